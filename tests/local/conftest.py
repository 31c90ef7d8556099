"""Fixtures for the local workspace (API side): a small project tree and a started workspace."""

from __future__ import annotations

import pytest

from localcml.workspace import LocalWorkspace
from tests.local.support import make_tree


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
