"""The workspace daemon killed (SIGKILL) while job runs are active: a restarted daemon adopts their engines.

As on CML, where an engine keeps running when the API server restarts, a job's engine outlives
the daemon; the next daemon follows it to its end, records its real exit status, and never
starts a second engine of the same job.
"""

from __future__ import annotations

import json

import pytest

from localcml.client.api import ApiException
from tests.chaos.gates import Gate, gate_code
from tests.chaos.processes import leaders, sigkill_group, wait_gone
from tests.chaos.stores import WorkspaceStore
from tests.local.support import runs_of, wait_for, wait_run


def _job(api, daemon, name, script, **fields):
    runtime = api.list_runtimes().runtimes[0].image_identifier
    body = {"name": name, "script": script, "runtime_identifier": runtime, **fields}
    return api.create_job(body, daemon.project_id)


def test_engines_outlive_a_killed_daemon_and_the_next_one_records_how_they_ended(start_daemon, project_root, gates):
    scripts = project_root / "scripts"
    ends = {
        "succeeds": (  # reaches the API with its own key after the restart: same port, key still valid
            "import os, cmlapi\n"
            "print('succeeds: in project', cmlapi.default_client().get_project(os.environ['CDSW_PROJECT_ID']).name)\n"
            "print('succeeds: done after the restart')\n"
        ),
        "fails": "raise RuntimeError('fails: broke after the restart')\n",
        "ends_alone": "print('ends_alone: finished while no daemon ran')\n",
        "killed": "print('killed: never printed')\n",
    }
    gate = {name: Gate(gates / name) for name in ends}
    for name, end in ends.items():
        (scripts / f"{name}.py").write_text(f"print('{name}: waiting', flush=True)\n{gate_code(gate[name].path)}{end}")
    daemon = start_daemon()
    api = daemon.client()
    jobs = {name: _job(api, daemon, name, f"scripts/{name}.py") for name in ends}
    after = _job(api, daemon, "after", "scripts/ok.py", parent_id=jobs["succeeds"].id)
    runs = {name: api.create_job_run({}, daemon.project_id, job.id) for name, job in jobs.items()}
    engines = wait_for(
        lambda: (found := leaders(daemon.workspace_dir, "run:")) and len(found) == len(runs) and found,
        "every engine to start",
    )
    for run in runs.values():
        wait_for(lambda run=run: "waiting" in WorkspaceStore(daemon.workspace_dir).run_log(run.id), "the gate")

    daemon.crash()
    pids = {name: engines[f"run:{run.id}"].pid for name, run in runs.items()}
    assert set(leaders(daemon.workspace_dir, "run:")) == {f"run:{r.id}" for r in runs.values()}  # they all outlive it
    gate["ends_alone"].release()
    sigkill_group(pids["killed"], "an engine killed while no daemon ran")
    wait_gone([pids["ends_alone"]], "the engine that ends alone")

    url = daemon.info["url"]
    daemon.up()
    assert daemon.info["url"] == url  # the engines know this address
    api = daemon.client()
    store = WorkspaceStore(daemon.workspace_dir)
    store.assert_one_active_run_per_job()
    for name in ("succeeds", "fails"):
        run = api.get_job_run(daemon.project_id, jobs[name].id, runs[name].id)
        assert run.status == "ENGINE_RUNNING", name  # adopted, not marked stopped
        with pytest.raises(ApiException) as err:  # and no second engine of the job
            api.create_job_run({}, daemon.project_id, jobs[name].id)
        assert "already has an active run" in json.loads(err.value.body)["message"]
    assert {p.pid for p in leaders(daemon.workspace_dir, "run:").values()} == {pids["succeeds"], pids["fails"]}

    gate["succeeds"].release()
    gate["fails"].release()
    final = {name: wait_run(api, daemon.project_id, jobs[name].id, run.id) for name, run in runs.items()}
    assert {name: run.status for name, run in final.items()} == {
        "succeeds": "ENGINE_SUCCEEDED",
        "fails": "ENGINE_FAILED",
        "ends_alone": "ENGINE_SUCCEEDED",
        "killed": "ENGINE_FAILED",
    }
    logs = {name: store.run_log(run.id) for name, run in runs.items()}
    assert "kept running and is followed to its end" in logs["succeeds"]
    assert "succeeds: in project cml-monitor" in logs["succeeds"]
    assert store.last_line(runs["succeeds"].id) == "succeeds: done after the restart"
    assert store.last_line(runs["fails"].id) == "RuntimeError: fails: broke after the restart"
    assert "ends_alone: finished while no daemon ran" in logs["ends_alone"]
    assert store.last_line(runs["ends_alone"].id).endswith("ended with exit code 0 while no daemon watched it")
    assert "killed: never printed" not in logs["killed"]
    assert "an unknown status" in store.last_line(runs["killed"].id)
    # the chain goes on from an adopted run, once
    child = wait_for(lambda: runs_of(api, daemon.project_id, after.id), "the dependent's run")
    assert len(child) == 1 and wait_run(api, daemon.project_id, after.id, child[0].id).status == "ENGINE_SUCCEEDED"
    store.assert_one_active_run_per_job()
    assert leaders(daemon.workspace_dir, "run:") == {}
