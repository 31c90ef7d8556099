"""Replicas the marker cannot find (W moved after its daemon was SIGKILLed) are found by W's records and stopped.

A replica's environment names the directory W it was started for. When the project (and W in
it) is moved or renamed while replicas run without a daemon, that marker names a path that is no
longer W: only W's own record of each replica (pid, start time, command line) still finds them.
`local up` in the new place stops them and deploys again; `local down` stops them with or
without a daemon. Nothing is left running.
"""

from __future__ import annotations

import pytest

from tests.chaos.daemon import Daemon
from tests.chaos.processes import alive, assert_no_processes, leaders, wait_gone
from tests.local.support import wait_build, wait_deployment

TAGGED = "import os\n\ndef predict(args):\n    return {'tag': os.environ['TAG']}\n"


@pytest.fixture
def crashed_and_moved(start_daemon, project_root, tmp_path):
    """A deployment of 2 replicas serves; its daemon is SIGKILLed and the project moved: (old pids, moved root, ids)."""
    (project_root / "models" / "tagged.py").write_text(TAGGED)
    daemon = start_daemon()
    api = daemon.client()
    model = api.create_model({"project_id": daemon.project_id, "name": "tower"}, daemon.project_id)
    runtime = api.list_runtimes().runtimes[0].image_identifier
    body = {"file_path": "models/tagged.py", "function_name": "predict", "runtime_identifier": runtime}
    build = api.create_model_build(body, daemon.project_id, model.id)
    assert wait_build(api, daemon.project_id, model.id, build.id).status == "built"
    dep = api.create_model_deployment(
        {"replicas": 2, "environment": {"TAG": "moved"}}, daemon.project_id, model.id, build.id
    )
    assert wait_deployment(api, daemon.project_id, model.id, build.id, dep.id).status == "deployed"
    old = [p.pid for p in leaders(daemon.workspace_dir, "replica:").values()]
    assert len(old) == 2

    daemon.crash()
    assert all(alive(pid) for pid in old)  # replicas outlive their daemon, as pods do
    moved = tmp_path / "moved"
    project_root.rename(moved)  # the user moves (or renames) the project folder
    return old, moved, model, build, dep


def test_local_up_in_the_new_place_stops_the_old_replicas_and_serves_again(crashed_and_moved):
    old, moved, model, build, dep = crashed_and_moved
    daemon = Daemon(moved / ".cml-local", moved).up()
    try:
        wait_gone(old, "the replicas started for the old path")
        api = daemon.client()
        assert wait_deployment(api, daemon.project_id, model.id, build.id, dep.id).status == "deployed"
        assert daemon.call_model(model.access_key, {}).json() == {"success": True, "response": {"tag": "moved"}}
        serving = {p.pid for p in leaders(daemon.workspace_dir, "replica:").values()}
        assert len(serving) == 2 and not serving & set(old)
        log = (daemon.workspace_dir / "deployments" / dep.id / "deploy.log").read_text()
        assert "was started for another workspace path: stopped" in log
    finally:
        daemon.down()
    assert_no_processes(daemon.workspace_dir)
    assert not any(alive(pid) for pid in old)


def test_local_down_without_a_daemon_stops_the_replicas_its_records_name(crashed_and_moved):
    old, moved, *_ = crashed_and_moved
    assert Daemon(moved / ".cml-local", moved).down() is True  # `local down`: no daemon serves the moved W
    wait_gone(old, "the replicas started for the old path")
