"""Fixtures: a real in-process local workspace and a CmlApi over a recording client."""

from __future__ import annotations

import pytest

from localcml.workspace import LocalWorkspace
from monitoring.cmlclient.api import CmlApi
from tests.cmlclient.support import RecordingClient, fast_policy, make_tree


@pytest.fixture
def ws(tmp_path):
    root = make_tree(tmp_path / "project")
    workspace = LocalWorkspace(root / ".cml-local", root, busy_timeout=0.5, health_timeout=30.0).start()
    yield workspace
    workspace.stop()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(ws):
    return RecordingClient(ws.client())


@pytest.fixture
def api(ws, client, sleeps):
    return CmlApi(client, ws.project_id, fast_policy(sleeps))
