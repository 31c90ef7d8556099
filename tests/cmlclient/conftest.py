"""Fixtures: a real in-process local workspace and a CmlApi over a recording client."""

from __future__ import annotations

import pytest

from monitoring.cmlclient.api import CmlApi
from tests.cmlclient.support import RecordingClient, fast_policy, started_workspace


@pytest.fixture
def ws(tmp_path):
    with started_workspace(tmp_path / "project") as workspace:
        yield workspace


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(ws):
    return RecordingClient(ws.client())


@pytest.fixture
def api(ws, client, sleeps):
    return CmlApi(client, ws.project_id, fast_policy(sleeps))
