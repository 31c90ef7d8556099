"""Fixtures for the local workspace (API side): a small project tree and a started workspace."""

from __future__ import annotations

import pytest

from localcml.workspace import LocalWorkspace
from tests.local.support import make_tree, wait_build, wait_deployment


@pytest.fixture
def project_root(tmp_path):
    return make_tree(tmp_path / "project")


@pytest.fixture
def ws(tmp_path, project_root):
    workspace = LocalWorkspace(
        tmp_path / "project" / ".cml-local", project_root, busy_timeout=0.5, health_timeout=20.0
    ).start()
    yield workspace
    workspace.stop()


@pytest.fixture
def api(ws):
    return ws.client()


@pytest.fixture
def runtime_id(api):
    return api.list_runtimes().runtimes[0].image_identifier


@pytest.fixture
def new_job(api, ws, runtime_id):
    """Create a job: ``new_job(name, script, **fields)``."""

    def create(name: str, script: str = "scripts/ok.py", **fields):
        body = {"name": name, "script": script, "runtime_identifier": runtime_id, **fields}
        return api.create_job(body, ws.project_id)

    return create


@pytest.fixture
def model(api, ws):
    return api.create_model({"project_id": ws.project_id, "name": "tower", "description": "d"}, ws.project_id)


@pytest.fixture
def build_of(api, ws, model, runtime_id):
    def create(file_path: str, function_name: str = "predict", wait: bool = True):
        body = {
            "project_id": ws.project_id,
            "model_id": model.id,
            "file_path": file_path,
            "function_name": function_name,
            "runtime_identifier": runtime_id,
            "kernel": "python3",
        }
        build = api.create_model_build(body, ws.project_id, model.id)
        return wait_build(api, ws.project_id, model.id, build.id) if wait else build

    return create


@pytest.fixture
def deploy(api, ws, model):
    def create(build, environment=None, replicas=1, wait=True):
        body = {"cpu": 1, "memory": 2, "replicas": replicas, "environment": environment or {}}
        dep = api.create_model_deployment(body, ws.project_id, model.id, build.id)
        return wait_deployment(api, ws.project_id, model.id, build.id, dep.id) if wait else dep

    return create
