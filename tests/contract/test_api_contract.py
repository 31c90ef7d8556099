"""Every response the local workspace returns validates against the API v2 definitions; bodies are checked."""

from __future__ import annotations

import json
import re
import time

import pytest
import requests

from localcml.client.api import ApiException
from localcml.workspace import LocalWorkspace
from tests.contract import swagger_check

SPEC = swagger_check.load()


def _snake(operation_id: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", operation_id).lower()


def implemented() -> set[str]:
    """The operations the workspace honours (every other one answers 501: see tests/local/test_spec_walk.py)."""
    from localcml.applications import urls as applications
    from localcml.jobs import urls as jobs
    from localcml.models import urls as models
    from localcml.projects import urls as projects
    from localcml.runtimes import urls as runtimes

    return {op for urls in (projects, jobs, models, applications, runtimes) for op in urls.OPERATIONS}


class Recorder:
    """Calls client methods with ``_preload_content=False`` and validates each raw JSON response."""

    def __init__(self, api):
        self.api = api
        self.seen: set[str] = set()

    def __call__(self, operation_id: str, *args, **kwargs) -> dict:
        resp = getattr(self.api, _snake(operation_id))(*args, _preload_content=False, **kwargs)
        data = json.loads(resp.data)
        problems = swagger_check.errors(SPEC, data, swagger_check.response_definition(SPEC, operation_id))
        assert problems == [], f"{operation_id}: {problems}"
        self.seen.add(operation_id)
        return data


def _wait(check, what, timeout=60.0):
    """Poll a real process's progress (bounded)."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def workspace(tmp_path):
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "ok.py").write_text("print('ok')\n")
    (root / "scripts" / "block.py").write_text("import threading\nthreading.Event().wait()\n")
    (root / "model.py").write_text("def predict(args):\n    return {'n': len(args)}\n")
    (root / "app.py").write_text(
        "import http.server, os\n"
        "http.server.HTTPServer(('127.0.0.1', int(os.environ['CDSW_APP_PORT'])), "
        "http.server.SimpleHTTPRequestHandler).serve_forever()\n"
    )
    ws = LocalWorkspace(tmp_path / "w", root, busy_timeout=1.0).start()
    yield ws
    ws.stop()


def test_every_operation_response_conforms(workspace):
    ws, call = workspace, Recorder(workspace.client())
    pid = ws.project_id
    call("CreateProject", {"name": "second", "environment": {"K": "V"}})
    second = call("ListProjects", search_filter='{"name": "sec"}')["projects"][0]
    call("ListProjectNames")
    call("GetProject", pid)
    call("UpdateProject", {"description": "changed", "environment": '{"K": "W"}'}, second["id"])
    call("ListProjectCollaborators", pid)
    call("ValidateAPIKey", {"audience": "API"})
    runtime = call("ListRuntimes")["runtimes"][0]["image_identifier"]
    head = call(
        "CreateJob",
        {
            "name": "head",
            "script": "scripts/ok.py",
            "runtime_identifier": runtime,
            "schedule": "0 * * * *",
            "environment": {"A": "1"},
            "timeout": 60,
        },
        pid,
    )
    child = call(
        "CreateJob",
        {"name": "child", "script": "scripts/ok.py", "runtime_identifier": runtime, "parent_id": head["id"]},
        pid,
    )
    call("ListJobs", pid, sort="-created_at", page_size=1)
    call("ListAllJobs")
    call("GetJob", pid, head["id"])
    call("UpdateJob", {"arguments": "--x 1", "environment": '{"A": "2"}'}, pid, head["id"])
    run = call("CreateJobRun", {"environment": {"R": "1"}}, pid, head["id"])
    call("GetJobRun", pid, head["id"], run["id"])
    _wait(lambda: ws.client().list_job_runs(pid, child["id"]).job_runs, "the dependent run")
    call("ListJobRuns", pid, head["id"])
    blocker = call("CreateJob", {"name": "blocker", "script": "scripts/block.py", "runtime_identifier": runtime}, pid)
    late = call("CreateJobRun", {}, pid, blocker["id"])
    call("StopJobRun", pid, blocker["id"], late["id"])
    _wait(lambda: ws.client().get_job_run(pid, blocker["id"], late["id"]).status == "ENGINE_STOPPED", "the stop")
    call("GetJobRun", pid, blocker["id"], late["id"])
    call("DeleteJob", pid, child["id"])
    model = call("CreateModel", {"project_id": pid, "name": "m", "description": "d"}, pid)
    call("ListModels", pid)
    call("ListAllModels")
    call("GetModel", pid, model["id"])
    call("UpdateModel", {"description": "changed"}, pid, model["id"])
    build = call(
        "CreateModelBuild",
        {
            "project_id": pid,
            "model_id": model["id"],
            "file_path": "model.py",
            "function_name": "predict",
            "runtime_identifier": runtime,
            "kernel": "python3",
        },
        pid,
        model["id"],
    )
    _wait(lambda: ws.client().get_model_build(pid, model["id"], build["id"]).status == "built", "the build")
    call("ListModelBuilds", pid, model["id"], sort="-created_at")
    call("GetModelBuild", pid, model["id"], build["id"])
    dep = call(
        "CreateModelDeployment",
        {"cpu": 1, "memory": 2, "replicas": 1, "environment": {"E": "1"}},
        pid,
        model["id"],
        build["id"],
    )
    _wait(
        lambda: ws.client().get_model_deployment(pid, model["id"], build["id"], dep["id"]).status == "deployed",
        "the deployment",
    )
    call("ListModelDeployments", pid, model["id"], build["id"])
    call("GetModelDeployment", pid, model["id"], build["id"], dep["id"])
    call("StopModelDeployment", pid, model["id"], build["id"], dep["id"])
    call("RestartModelDeployment", pid, model["id"], build["id"], dep["id"])
    _wait(
        lambda: ws.client().get_model_deployment(pid, model["id"], build["id"], dep["id"]).status == "deployed",
        "the restarted deployment",
    )
    call("ListRuntimeAddons")
    app = call(
        "CreateApplication",
        {"name": "dash", "subdomain": "dash", "script": "app.py", "runtime_identifier": runtime},
        pid,
    )
    call("ListApplications", pid)
    call("GetApplication", pid, app["id"])
    call("UpdateApplication", {"description": "the dashboard"}, pid, app["id"])
    call("RestartApplication", pid, app["id"])
    call("StopApplication", pid, app["id"])
    call("DeleteApplication", pid, app["id"])
    spare = call("CreateModel", {"name": "spare"}, pid)
    spare_build = call(
        "CreateModelBuild",
        {"file_path": "model.py", "function_name": "predict", "runtime_identifier": runtime},
        pid,
        spare["id"],
    )
    _wait(lambda: ws.client().get_model_build(pid, spare["id"], spare_build["id"]).status == "built", "the build")
    call("DeleteModelBuild", pid, spare["id"], spare_build["id"])
    call("DeleteModel", pid, spare["id"])
    call("DeleteProject", second["id"])
    assert call.seen == implemented()


def test_error_bodies_are_runtime_errors(workspace):
    with pytest.raises(ApiException) as err:
        workspace.client().get_job(workspace.project_id, "missing")
    assert swagger_check.errors(SPEC, json.loads(err.value.body), "runtimeError") == []


def test_validator_rejects_a_request_field_the_spec_lacks():
    body = {"cpu": 1, "memory": 2, "replicas": 1, "replica_count": 2, "nvidia_gpu": 0}
    problems = swagger_check.errors(SPEC, body, "CreateModelDeploymentRequest")
    assert len(problems) == 2 and "replica_count" in problems[0] and "nvidia_gpu" in problems[1]
    assert (
        swagger_check.errors(
            SPEC, {"cpu": 1, "nvidia_gpus": 0, "environment": {"A": "1"}}, "CreateModelDeploymentRequest"
        )
        == []
    )
    assert swagger_check.errors(SPEC, {"environment": {"A": 1}}, "CreateJobRequest")  # map values are strings
    assert swagger_check.errors(SPEC, {"timeout": 60}, "Job")  # int64 in a response must be a string
    assert swagger_check.errors(SPEC, {"status": "RUNNING"}, "JobRun")  # enum


def test_server_reads_bodies_as_cmls_gateway_does_lenient_on_form_strict_on_types(workspace):
    """Unknown fields are ignored, numbers may be strings; a wrong type is refused. The contract
    tests (not the server) are what keep our own bodies exact."""
    url = f"{workspace.url}/api/v2/projects/{workspace.project_id}/jobs"
    headers = {"authorization": f"Bearer {workspace.api_key}"}
    runtime = workspace.client().list_runtimes().runtimes[0].image_identifier
    body = {"name": "x", "script": "scripts/ok.py", "runtime_identifier": runtime, "environment_variables": {}}
    reply = requests.post(url, json={**body, "cpu": "2"}, headers=headers, timeout=10)
    assert reply.status_code == 200 and reply.json()["cpu"] == 2.0 and "environment_variables" not in reply.json()
    assert swagger_check.errors(SPEC, body, "CreateJobRequest") == [
        "$.environment_variables: field not in CreateJobRequest"
    ]
    wrong = requests.post(url, json={**body, "name": "y", "cpu": "two"}, headers=headers, timeout=10)
    assert wrong.status_code == 400 and "cpu: expected a number, got str 'two'" in wrong.json()["message"]
    assert swagger_check.errors(SPEC, wrong.json(), "runtimeError") == []
    assert requests.get(url, timeout=10).status_code == 401
    spec = requests.get(f"{workspace.url}/api/v2/swagger.json", timeout=10).json()
    assert spec["definitions"] == SPEC["definitions"]  # served unauthenticated, same as the contract file
