"""Shared fixtures: one throwaway PostgreSQL server per test session, a fresh database per test."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import pytest

from tests.pg import postgres_unavailable_reason, start_postgres


@pytest.fixture(scope="session")
def pg_server_url():
    """A throwaway PostgreSQL server (tests/pg.py). Missing binaries fail the test, never skip it:
    `.ci/run` installs them (Debian package `postgresql`)."""
    reason = postgres_unavailable_reason()
    if reason:
        pytest.fail(f"{reason}: install the Debian package 'postgresql' (apt-get install -y postgresql)")
    with start_postgres() as url:
        yield url


@pytest.fixture
def new_pg_database(pg_server_url):
    """``new_pg_database(prefix)`` -> URL of a fresh empty database, dropped after the test."""
    import psycopg
    from psycopg import sql

    created: list[str] = []

    def create(prefix: str = "t") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return urlsplit(pg_server_url)._replace(path="/" + name).geturl()

    yield create
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
