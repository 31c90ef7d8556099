"""Fixtures for the state store tests: a store per backend (SQLite, and PostgreSQL when available)."""

from __future__ import annotations

import pytest

from monitoring.state.store import StateStore

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]


@pytest.fixture
def pg_url(new_pg_database):
    """A fresh, empty database on the session's throwaway server, dropped after the test."""
    return new_pg_database("state")


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path):
    """A URL of an empty state store: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url):
    s = StateStore(store_url)
    yield s
    s.close()
