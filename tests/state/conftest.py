"""Fixtures for the state-store tests: a store URL per backend (SQLite, and PostgreSQL), and the fault
matrix's bootstrapped project (``template``, once per worker) with a started workspace per test (``rig``)."""

from __future__ import annotations

import pytest

from tests.faults.conftest import rig, template  # noqa: F401 - shared fixtures, one template build per worker

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A URL of an empty state store: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("new_pg_database")("state")
