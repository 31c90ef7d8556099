"""Fixtures for the job graph: empty local workspaces (A, B, ...)."""

from __future__ import annotations

import pytest

from localcml.workspace import LocalWorkspace


@pytest.fixture
def workspace(tmp_path):
    """``workspace(name)`` -> a started empty local workspace (stopped after the test)."""
    started: list[LocalWorkspace] = []

    def start(name: str) -> LocalWorkspace:
        root = tmp_path / name
        root.mkdir()
        started.append(LocalWorkspace(root / ".cml-local", root).start())
        return started[-1]

    yield start
    for ws in started:
        ws.stop()
