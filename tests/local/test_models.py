"""Models, builds, deployments and the model endpoint router, with real model server processes."""

from __future__ import annotations

import json
import os
import threading

import pytest
import requests

from localcml.client.api import ApiException
from tests.local.support import call, runs_of, wait_build, wait_deployment, wait_for, wait_run


def test_model_has_access_key_crn_and_auth(api, ws, model):
    assert len(model.access_key) == 32 and model.auth_enabled is True
    assert model.crn.startswith("crn:cdp:ml:local:") and model.crn.endswith("/" + model.id)
    open_model = api.create_model({"name": "open", "disable_authentication": True}, ws.project_id)
    assert open_model.auth_enabled is False and open_model.access_key != model.access_key
    assert api.get_model(ws.project_id, model.id) == model
    assert [m.name for m in api.list_all_models().models] == ["tower", "open"]


def test_build_snapshots_project_and_becomes_built(api, ws, model, build_of):
    first = build_of("models/echo.py", wait=False)
    assert first.status in ("pending", "building")
    build = wait_build(api, ws.project_id, model.id, first.id)
    assert build.status == "built" and build.built_at is not None and build.crn.endswith(build.id)
    snap = ws.workspace_dir / "builds" / build.id
    assert (snap / "models" / "echo.py").is_file() and (snap / "var" / "models" / "v1.json").is_file()
    for left_out in (
        ".git",
        ".venv",
        "models/__pycache__",
        "demo-output",
        "cml_monitor.egg-info",
        ".cml-local",
    ):
        assert not (snap / left_out).exists(), left_out
    latest = api.list_model_builds(ws.project_id, model.id, sort="-created_at", search_filter='{"status": "built"}')
    assert [b.id for b in latest.model_builds] == [build.id]


def test_build_fails_on_import_error_or_missing_function(api, ws, build_of):
    assert build_of("models/broken.py").status == "build failed"
    assert build_of("models/echo.py", function_name="nope").status == "build failed"
    assert build_of("models/missing.py").status == "build failed"


def test_deploy_serves_and_redeploy_replaces_only_after_healthy(api, ws, model, build_of, deploy):
    build = build_of("models/echo.py")
    with pytest.raises(ApiException):  # the endpoint refuses a deployment of a build that is not built
        api.create_model_deployment({}, ws.project_id, model.id, build_of("models/broken.py").id)
    first = deploy(build)
    assert first.status == "deployed" and first.crn.endswith(first.id)
    reply = call(ws, model.access_key, {"x": 1})
    assert reply.status_code == 200 and reply.json() == {"success": True, "response": {"echo": {"x": 1}}}
    second = deploy(build_of("models/echo.py"))
    assert second.status == "deployed" and second.crn != first.crn and second.id != first.id
    old = wait_for(
        lambda: (
            (d := api.get_model_deployment(ws.project_id, model.id, first.build_id, first.id)).status == "stopped" and d
        ),
        "the previous deployment to stop",
    )
    assert old.stopped_at is not None
    assert call(ws, model.access_key, {"x": 2}).status_code == 200
    assert api.get_model(ws.project_id, model.id).access_key == model.access_key  # stays across deployments
    deps = api.list_model_deployments(ws.project_id, model.id, second.build_id).model_deployments
    assert [d.id for d in deps] == [second.id] and json.loads(deps[0].environment) == {}
    with pytest.raises(ApiException) as err:  # deployments have no sort keys
        api.list_model_deployments(ws.project_id, model.id, second.build_id, sort="-created_at")
    assert err.value.status == 400


def test_deployment_that_never_gets_healthy_fails_and_previous_keeps_serving(tmp_path, project_root, runtime_id):
    from localcml.workspace import LocalWorkspace

    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    with LocalWorkspace(tmp_path / "w", project_root, health_timeout=60) as ws:
        api = ws.client()
        model = api.create_model({"name": "m"}, ws.project_id)
        body = {"file_path": "models/hang.py", "function_name": "predict", "runtime_identifier": runtime_id}
        build = wait_build(api, ws.project_id, model.id, api.create_model_build(body, ws.project_id, model.id).id)
        good = api.create_model_deployment({}, ws.project_id, model.id, build.id)
        assert wait_deployment(api, ws.project_id, model.id, build.id, good.id).status == "deployed"
        ws.deployer.health_timeout = 1.0  # short only for the deployment that can never get healthy
        bad = api.create_model_deployment({"environment": {"HANG_FIFO": str(fifo)}}, ws.project_id, model.id, build.id)
        assert json.loads(bad.environment) == {"HANG_FIFO": str(fifo)}
        assert wait_deployment(api, ws.project_id, model.id, build.id, bad.id).status == "failed"
        assert api.get_model_deployment(ws.project_id, model.id, build.id, good.id).status == "deployed"
        assert call(ws, model.access_key, {}).json() == {"success": True, "response": 1}
        assert "not healthy" in (ws.workspace_dir / "deployments" / bad.id / "deploy.log").read_text()


def test_router_answers_429_model_busy_when_the_single_replica_is_busy(api, ws, model, build_of, deploy, tmp_path):
    dep = deploy(build_of("models/gate.py"))
    assert dep.status == "deployed"
    fifo = tmp_path / "gate"
    os.mkfifo(fifo)
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(reply=call(ws, model.access_key, {"fifo": str(fifo)})))
    worker.start()
    writer = os.open(fifo, os.O_WRONLY)  # returns once predict has opened the gate: the replica is busy
    try:
        busy = call(ws, model.access_key, {"fifo": str(fifo)})
        assert busy.status_code == 429
        assert busy.json()["success"] is False and busy.json()["error"]["code"] == "model.busy"
    finally:
        os.write(writer, b"go")
        os.close(writer)
    worker.join(30)
    assert first["reply"].json() == {"success": True, "response": {"released": "go"}}


def test_router_refuses_wrong_access_key_wrong_model_key_and_big_bodies(api, ws, model, build_of, deploy):
    deploy(build_of("models/echo.py"))
    unknown = call(ws, "m" + "0" * 31, {})
    assert unknown.status_code == 404 and unknown.json()["success"] is False
    assert call(ws, model.access_key, {}, token="wrong-model-api-key").status_code == 401
    big = requests.post(
        ws.model_url, data=b"x" * (5 * 1024 * 1024 + 1), headers={"Content-Type": "application/json"}, timeout=30
    )
    assert big.status_code == 413
    assert call(ws, model.access_key, {"ok": True}).status_code == 200


def test_metrics_tracked_in_a_replica_are_readable_from_a_job(api, ws, model, build_of, deploy, new_job, tmp_path):
    dep = deploy(build_of("models/metered.py"))
    assert dep.status == "deployed", (ws.workspace_dir / "deployments" / dep.id / "replica-0.log").read_text()
    reply = call(ws, model.access_key, {"x": 21}).json()
    assert reply["success"] and reply["response"]["prediction"] == 42 and reply["response"]["uuid"]
    out = tmp_path / "metrics.json"
    job = new_job("reader", "models/reader.py", environment={"DEPLOYMENT_CRN": dep.crn, "PROBE_OUT": str(out)})
    run = wait_run(api, ws.project_id, job.id, api.create_job_run({}, ws.project_id, job.id).id)
    assert run.status == "ENGINE_SUCCEEDED", (ws.workspace_dir / "runs" / f"{run.id}.log").read_text()
    records = json.loads(out.read_text())["metrics"]
    assert [r["predictionUuid"] for r in records] == [reply["response"]["uuid"]]
    assert records[0]["modelDeploymentCrn"] == dep.crn and records[0]["modelCrn"] == model.crn
    assert records[0]["metrics"]["prediction"] == 42
    assert runs_of(api, ws.project_id, job.id)[0].id == run.id


def test_stop_and_restart_deployment_keep_id_and_crn(api, ws, model, build_of, deploy):
    dep = deploy(build_of("models/echo.py"))
    stopped = api.stop_model_deployment(ws.project_id, model.id, dep.build_id, dep.id)
    assert stopped.status == "stopped" and stopped.stopped_at is not None
    assert call(ws, model.access_key, {}).status_code == 503
    restarted = api.restart_model_deployment(ws.project_id, model.id, dep.build_id, dep.id)
    assert restarted.id == dep.id and restarted.crn == dep.crn
    assert wait_deployment(api, ws.project_id, model.id, dep.build_id, dep.id).status == "deployed"
    assert call(ws, model.access_key, {}).status_code == 200


def test_a_restarted_workspace_serves_its_deployed_models_again(tmp_path, project_root, runtime_id):
    from localcml.workspace import LocalWorkspace

    with LocalWorkspace(tmp_path / "w", project_root) as ws:
        api = ws.client()
        model = api.create_model({"name": "m", "disable_authentication": True}, ws.project_id)
        body = {"file_path": "models/echo.py", "function_name": "predict", "runtime_identifier": runtime_id}
        build = wait_build(api, ws.project_id, model.id, api.create_model_build(body, ws.project_id, model.id).id)
        dep = api.create_model_deployment({}, ws.project_id, model.id, build.id)
        assert wait_deployment(api, ws.project_id, model.id, build.id, dep.id).status == "deployed"
    with LocalWorkspace(tmp_path / "w", project_root) as again:
        api = again.client()
        assert wait_deployment(api, again.project_id, model.id, build.id, dep.id).status == "deployed"
        reply = requests.post(again.model_url, json={"accessKey": model.access_key, "request": {"a": 1}}, timeout=30)
        assert reply.json() == {"success": True, "response": {"echo": {"a": 1}}}


def test_previous_deployment_serves_until_the_new_one_is_healthy(api, ws, model, build_of, deploy, tmp_path):
    build = build_of("models/hang.py")
    old = deploy(build)
    assert old.status == "deployed"
    fifo = tmp_path / "import-gate"
    os.mkfifo(fifo)
    new = deploy(build, environment={"HANG_FIFO": str(fifo)}, wait=False)
    writer = os.open(fifo, os.O_WRONLY)  # returns once the new replica is importing (blocked on the gate)
    try:
        assert api.get_model_deployment(ws.project_id, model.id, build.id, new.id).status == "deploying"
        assert api.get_model_deployment(ws.project_id, model.id, build.id, old.id).status == "deployed"
        assert call(ws, model.access_key, {}).json() == {"success": True, "response": 1}
    finally:
        os.close(writer)  # EOF: the import finishes and the replica starts serving
    assert wait_deployment(api, ws.project_id, model.id, build.id, new.id).status == "deployed"
    wait_for(
        lambda: api.get_model_deployment(ws.project_id, model.id, build.id, old.id).status == "stopped",
        "the previous deployment to stop",
    )
    assert call(ws, model.access_key, {}).status_code == 200
