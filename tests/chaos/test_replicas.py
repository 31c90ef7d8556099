"""Replicas killed (SIGKILL) under a running daemon: restarted as Kubernetes restarts a CML replica, or failed."""

from __future__ import annotations

from tests.chaos.gates import Gate
from tests.chaos.processes import leaders, sigkill_group
from tests.chaos.stores import WorkspaceStore
from tests.local.support import wait_build, wait_deployment, wait_for

GATED = (
    "import os\nif os.environ.get('GATE'):\n    with open(os.environ['GATE']) as _gate:\n        _gate.read()\n"
    "if os.path.exists(os.environ.get('CRASH_FLAG', '/nonexistent')):\n    os._exit(3)\n\n"
    "def predict(args):\n    return {'pid': os.getpid()}\n"
)


def _deployed(daemon, project_root, replicas=1, **environment):
    (project_root / "models" / "gated.py").write_text(GATED)
    api = daemon.client()
    runtime = api.list_runtimes().runtimes[0].image_identifier
    model = api.create_model({"project_id": daemon.project_id, "name": "m"}, daemon.project_id)
    body = {"file_path": "models/gated.py", "function_name": "predict", "runtime_identifier": runtime}
    build = wait_build(api, daemon.project_id, model.id, api.create_model_build(body, daemon.project_id, model.id).id)
    dep = api.create_model_deployment(
        {"replicas": replicas, "environment": environment}, daemon.project_id, model.id, build.id
    )
    assert wait_deployment(api, daemon.project_id, model.id, build.id, dep.id).status == "deployed"
    return api, model, dep


def test_a_killed_replica_is_restarted_and_the_model_is_busy_meanwhile(start_daemon, project_root, gates):
    gate = Gate(gates / "replica", closed=False)
    daemon = start_daemon("--busy-timeout", "0.3")
    api, model, dep = _deployed(daemon, project_root, GATE=str(gate.path))
    first = leaders(daemon.workspace_dir)[f"replica:{dep.id}:0"]
    assert daemon.call_model(model.access_key, {}).json()["response"] == {"pid": first.pid}
    gate.close()  # the restarted replica will wait at the gate: the test sees the model while it restarts

    sigkill_group(first.pid, "the replica")
    wait_for(lambda: f"replica:{dep.id}:0" in leaders(daemon.workspace_dir), "the replica to be started again")
    busy = daemon.call_model(model.access_key, {})
    assert busy.status_code == 429 and busy.json()["error"]["code"] == "model.busy"
    assert "1 of its 1 replicas are being restarted" in busy.json()["error"]["message"]
    assert api.get_model_deployment(daemon.project_id, model.id, dep.build_id, dep.id).status == "deployed"
    gate.open()
    reply = wait_for(lambda: (r := daemon.call_model(model.access_key, {})).status_code == 200 and r, "serving again")
    second = leaders(daemon.workspace_dir)[f"replica:{dep.id}:0"]
    assert reply.json()["response"] == {"pid": second.pid} and second.pid != first.pid
    log = WorkspaceStore(daemon.workspace_dir).deploy_log(dep.id)
    assert f"replica 0 (pid {first.pid}) exited with signal SIGKILL" in log
    assert f"replica 0 serves again (pid {second.pid})" in log


def test_a_crash_looping_replica_fails_its_deployment(start_daemon, project_root, tmp_path):
    flag = tmp_path / "crash"
    daemon = start_daemon("--busy-timeout", "0.3", "--replica-backoff", "0")
    api, model, dep = _deployed(daemon, project_root, replicas=2, CRASH_FLAG=str(flag))
    flag.write_text("from now on a replica exits with code 3 as it starts")
    sigkill_group(leaders(daemon.workspace_dir)[f"replica:{dep.id}:0"].pid, "the replica")

    failed = wait_for(
        lambda: (
            (d := api.get_model_deployment(daemon.project_id, model.id, dep.build_id, dep.id)).status == "failed" and d
        ),
        "the deployment to fail",
    )
    assert failed.status == "failed"
    assert leaders(daemon.workspace_dir, "replica:") == {}  # its healthy replica is stopped too
    log = WorkspaceStore(daemon.workspace_dir).deploy_log(dep.id)
    assert "deployment failed: replica 0 exited with code 3 before it was healthy" in log
    assert "failed 5 times in a row (crash loop)" in log
    gone = daemon.call_model(model.access_key, {})
    assert gone.status_code == 503 and gone.json()["error"]["code"] == "model.not_deployed"
