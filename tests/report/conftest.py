"""Fixtures for the report tests: a state store on a fresh SQLite file."""

from __future__ import annotations

import pytest

from monitoring.state.store import StateStore


@pytest.fixture
def store(tmp_path):
    s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()
