"""Fixtures for the state store tests: a store per backend (SQLite, and PostgreSQL when available)."""
from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest

from monitoring.store import StateStore
from tests.pg import postgres_unavailable_reason, start_postgres


BACKENDS = [pytest.param("sqlite", id="sqlite"),
            pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(scope="session")
def pg_server_url():
    """One throwaway PostgreSQL server for the session (tests/pg.py), in the system temp dir."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.skip(reason)
    with start_postgres() as url:
        yield url


@pytest.fixture
def pg_url(pg_server_url):
    """A fresh, empty database on the throwaway server, dropped after the test."""
    import psycopg
    from psycopg import sql

    name = f"state_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield urlsplit(pg_server_url)._replace(path="/" + name).geturl()
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


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
