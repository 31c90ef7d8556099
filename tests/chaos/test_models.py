"""The workspace daemon killed (SIGKILL) during a build, a deployment, or while models serve.

A restarted daemon checks an interrupted build again (the old check is killed), resumes the
newest requested deployment of each model while the deployed one keeps serving, stops the
older ones, and adopts replicas that still serve: no two deployments of a model are live, and
no replica is left without a daemon watching it.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.chaos.gates import Gate, gate_code
from tests.chaos.processes import leaders, sigkill_group, wait_gone, workspace_processes
from tests.chaos.stores import WorkspaceStore
from tests.local.support import wait_build, wait_deployment, wait_for

TAGGED = "import os\n\ndef predict(args):\n    return {'tag': os.environ['TAG']}\n"
#: A model whose replicas wait at the gate named by their deployment's GATE variable (a build does not).
GATED = (
    "import os\nif os.environ.get('GATE'):\n    with open(os.environ['GATE']) as _gate:\n        _gate.read()\n"
    + TAGGED
)


def _model(api, daemon, name="tower"):
    return api.create_model({"project_id": daemon.project_id, "name": name}, daemon.project_id)


def _build(api, daemon, model, file_path):
    runtime = api.list_runtimes().runtimes[0].image_identifier
    body = {"file_path": file_path, "function_name": "predict", "runtime_identifier": runtime}
    return api.create_model_build(body, daemon.project_id, model.id)


def _deploy(api, daemon, model, build, **environment):
    body = {"replicas": 1, "environment": environment}
    return api.create_model_deployment(body, daemon.project_id, model.id, build.id)


def _status(api, daemon, model, dep):
    return api.get_model_deployment(daemon.project_id, model.id, dep.build_id, dep.id).status


def test_a_build_interrupted_by_a_crash_is_checked_again_and_its_deployment_follows(start_daemon, project_root, gates):
    gate = Gate(gates / "build")
    (project_root / "models" / "slow.py").write_text(gate_code(gate.path) + TAGGED)
    daemon = start_daemon()
    api = daemon.client()
    model = _model(api, daemon)
    build = _build(api, daemon, model, "models/slow.py")
    dep = _deploy(api, daemon, model, build, TAG="first")  # waits for its build
    checking = wait_for(lambda: leaders(daemon.workspace_dir, "build:"), "the build check")[f"build:{build.id}"]

    daemon.crash()
    daemon.up()
    api = daemon.client()
    again = wait_for(
        lambda: (found := leaders(daemon.workspace_dir, "build:")) and found[f"build:{build.id}"].pid != checking.pid,
        "the build to be checked again",
    )
    assert again and not any(p.pid == checking.pid for p in workspace_processes(daemon.workspace_dir))
    assert api.get_model_build(daemon.project_id, model.id, build.id).status == "building"
    gate.open()
    assert wait_build(api, daemon.project_id, model.id, build.id).status == "built"
    assert wait_deployment(api, daemon.project_id, model.id, build.id, dep.id).status == "deployed"
    assert daemon.call_model(model.access_key, {}).json() == {"success": True, "response": {"tag": "first"}}
    log = (daemon.workspace_dir / "builds" / f"{build.id}.log").read_text()
    assert "restarted during this check; checking again" in log


@pytest.fixture
def redeploy(start_daemon, project_root, gates):
    """Deployment ``old`` serves; ``new``, requested later, is deploying: its replica waits at ``new_gate``."""
    old_gate, new_gate = Gate(gates / "old", closed=False), Gate(gates / "new")
    (project_root / "models" / "gated.py").write_text(GATED)
    daemon = start_daemon("--busy-timeout", "0.5")
    api = daemon.client()
    model = _model(api, daemon)
    build = _build(api, daemon, model, "models/gated.py")
    wait_build(api, daemon.project_id, model.id, build.id)
    old = _deploy(api, daemon, model, build, TAG="old", GATE=str(old_gate.path))
    assert wait_deployment(api, daemon.project_id, model.id, build.id, old.id).status == "deployed"
    new = _deploy(api, daemon, model, build, TAG="new", GATE=str(new_gate.path))
    wait_for(lambda: _status(api, daemon, model, new) == "deploying", "the new deployment to start its replica")
    return SimpleNamespace(
        daemon=daemon, model=model, build=build, old=old, new=new, old_gate=old_gate, new_gate=new_gate
    )


def test_a_crash_mid_deploy_keeps_the_old_serving_and_the_newest_wins(redeploy):
    daemon, model, build, old, new = redeploy.daemon, redeploy.model, redeploy.build, redeploy.old, redeploy.new
    old_replica = leaders(daemon.workspace_dir)[f"replica:{old.id}:0"]

    daemon.crash()
    daemon.up()
    api = daemon.client()
    # the old one still serves, from the same replica process, while the new one comes up again
    assert daemon.call_model(model.access_key, {}).json()["response"] == {"tag": "old"}
    assert leaders(daemon.workspace_dir)[f"replica:{old.id}:0"].pid == old_replica.pid
    assert _status(api, daemon, model, old) == "deployed"
    assert _status(api, daemon, model, new) in ("pending", "deploying")
    redeploy.new_gate.release()
    assert wait_deployment(api, daemon.project_id, model.id, build.id, new.id).status == "deployed"
    wait_for(lambda: _status(api, daemon, model, old) == "stopped", "the old deployment to be replaced")
    assert daemon.call_model(model.access_key, {}).json()["response"] == {"tag": "new"}
    wait_gone([old_replica.pid], "the old deployment's replica")
    assert set(leaders(daemon.workspace_dir, "replica:")) == {f"replica:{new.id}:0"}
    WorkspaceStore(daemon.workspace_dir).assert_at_most_one_deployed_per_model()


def test_the_newest_deployment_wins_even_when_the_older_would_be_healthy_last(redeploy):
    """Both come up again after the crash (the old one's replica died with the daemon); the new one wins."""
    daemon, model, build, old, new = redeploy.daemon, redeploy.model, redeploy.build, redeploy.old, redeploy.new
    redeploy.old_gate.close()  # the old deployment's next replica waits too

    daemon.crash()
    sigkill_group(leaders(daemon.workspace_dir)[f"replica:{old.id}:0"].pid, "the old deployment's replica")
    daemon.up()
    api = daemon.client()
    wait_for(lambda: f"replica:{old.id}:0" in leaders(daemon.workspace_dir), "the old replica to be restarted")
    assert _status(api, daemon, model, old) == "deploying"  # no replica of it ran: deployed again
    nothing = daemon.call_model(model.access_key, {})  # nothing serves while both come up
    assert nothing.status_code == 503 and nothing.json()["error"]["code"] == "model.not_deployed"
    redeploy.new_gate.release()
    assert wait_deployment(api, daemon.project_id, model.id, build.id, new.id).status == "deployed"
    wait_for(lambda: _status(api, daemon, model, old) == "stopped", "the old deployment to be replaced")
    wait_for(lambda: set(leaders(daemon.workspace_dir, "replica:")) == {f"replica:{new.id}:0"}, "one replica left")
    assert daemon.call_model(model.access_key, {}).json()["response"] == {"tag": "new"}
    store = WorkspaceStore(daemon.workspace_dir)
    store.assert_at_most_one_deployed_per_model()
    assert "replaced by deployment" in store.deploy_log(old.id)


def test_a_crash_while_idle_leaves_models_and_applications_serving_from_the_same_processes(start_daemon, project_root):
    (project_root / "models" / "tagged.py").write_text(TAGGED)
    (project_root / "apps").mkdir()
    (project_root / "apps" / "hello.py").write_text(
        "import http.server, os\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        body = f'hello from {os.getpid()}'.encode()\n"
        "        self.send_response(200); self.send_header('Content-Length', str(len(body))); self.end_headers()\n"
        "        self.wfile.write(body)\n"
        "http.server.HTTPServer(('127.0.0.1', int(os.environ['CDSW_APP_PORT'])), H).serve_forever()\n"
    )
    daemon = start_daemon()
    api = daemon.client()
    model = _model(api, daemon)
    build = _build(api, daemon, model, "models/tagged.py")
    wait_build(api, daemon.project_id, model.id, build.id)
    dep = api.create_model_deployment(
        {"replicas": 2, "environment": {"TAG": "idle"}}, daemon.project_id, model.id, build.id
    )
    assert wait_deployment(api, daemon.project_id, model.id, build.id, dep.id).status == "deployed"
    runtime = api.list_runtimes().runtimes[0].image_identifier
    app = api.create_application(
        {"name": "hello", "subdomain": "hello", "script": "apps/hello.py", "runtime_identifier": runtime},
        daemon.project_id,
    )
    wait_for(lambda: api.get_application(daemon.project_id, app.id).status == "APPLICATION_RUNNING", "the application")
    before = {role: p.pid for role, p in leaders(daemon.workspace_dir).items() if role != "daemon"}
    assert sorted(before) == sorted([f"replica:{dep.id}:0", f"replica:{dep.id}:1", f"app:{app.id}"])

    daemon.crash()
    assert {role: p.pid for role, p in leaders(daemon.workspace_dir).items()} == before  # they serve on, unwatched
    daemon.up()
    api = daemon.client()
    after = {role: p.pid for role, p in leaders(daemon.workspace_dir).items() if role != "daemon"}
    assert after == before  # adopted, not restarted
    for _ in range(4):
        assert daemon.call_model(model.access_key, {}).json() == {"success": True, "response": {"tag": "idle"}}
    assert daemon.get_app("hello").text == f"hello from {before[f'app:{app.id}']}"
    assert _status(api, daemon, model, dep) == "deployed"
    assert api.get_application(daemon.project_id, app.id).status == "APPLICATION_RUNNING"
    assert "replicas kept serving: 0 (pid" in WorkspaceStore(daemon.workspace_dir).deploy_log(dep.id)
    # and the adopted replicas are supervised: one killed now is restarted
    sigkill_group(before[f"replica:{dep.id}:1"], "an adopted replica")
    restarted = wait_for(
        lambda: (p := leaders(daemon.workspace_dir).get(f"replica:{dep.id}:1")) and p.pid != before[p.role] and p,
        "the adopted replica to be restarted",
    )
    assert restarted and _status(api, daemon, model, dep) == "deployed"
