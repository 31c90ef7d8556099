"""``cml-monitor local down`` after the daemon was killed: nothing the workspace started is left running."""

from __future__ import annotations

from tests.chaos.gates import Gate, gate_code
from tests.chaos.processes import assert_no_processes, leaders
from tests.chaos.stores import WorkspaceStore
from tests.local.support import wait_build, wait_deployment, wait_for, wait_run


def test_local_down_after_a_crash_stops_what_the_dead_daemon_left_and_up_resumes(start_daemon, project_root, gates):
    gate = Gate(gates / "run")
    (project_root / "scripts" / "gated.py").write_text("print('waiting', flush=True)\n" + gate_code(gate.path))
    daemon = start_daemon()
    api = daemon.client()
    runtime = api.list_runtimes().runtimes[0].image_identifier
    job = api.create_job(
        {"name": "gated", "script": "scripts/gated.py", "runtime_identifier": runtime}, daemon.project_id
    )
    run = api.create_job_run({}, daemon.project_id, job.id)
    model = api.create_model({"project_id": daemon.project_id, "name": "m"}, daemon.project_id)
    body = {"file_path": "models/echo.py", "function_name": "predict", "runtime_identifier": runtime}
    build = wait_build(api, daemon.project_id, model.id, api.create_model_build(body, daemon.project_id, model.id).id)
    dep = api.create_model_deployment({"replicas": 2}, daemon.project_id, model.id, build.id)
    assert wait_deployment(api, daemon.project_id, model.id, build.id, dep.id).status == "deployed"
    wait_for(lambda: f"run:{run.id}" in leaders(daemon.workspace_dir), "the engine")
    assert len(leaders(daemon.workspace_dir, "replica:")) == 2

    daemon.crash()
    assert len(leaders(daemon.workspace_dir)) == 3  # an engine and two replicas, without a daemon
    assert daemon.down() is True
    assert_no_processes(daemon.workspace_dir)
    store = WorkspaceStore(daemon.workspace_dir)
    assert store.last_line(run.id) == "local workspace: stopped by `local down` while no daemon ran"
    assert daemon.down() is False  # nothing left to stop

    daemon.up()
    api = daemon.client()
    assert wait_run(api, daemon.project_id, job.id, run.id).status == "ENGINE_STOPPED"
    assert wait_deployment(api, daemon.project_id, model.id, build.id, dep.id).status == "deployed"  # again
    reply = daemon.call_model(model.access_key, {"x": 1})
    assert reply.json() == {"success": True, "response": {"echo": {"x": 1}}}
    assert len(leaders(daemon.workspace_dir, "replica:")) == 2
    store.assert_one_active_run_per_job()
