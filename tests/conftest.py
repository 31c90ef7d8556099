"""Shared fixtures: one throwaway PostgreSQL server per test session, a fresh database per test.

Tests on that server are marked ``slow``: ``make check`` (the inner loop) leaves them out.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.pg import postgres_unavailable_reason, start_postgres

TESTS = Path(__file__).resolve().parent
#: Folders whose modules run longest (job runs, model replicas, the closed loop), queued first: with
#: ``--dist loadscope --no-loadscope-reorder`` (``make test``) the workers then finish together,
#: instead of one starting the longest module last.
LONGEST_FIRST = ("integration", "dashboard", "faults", "cmlclient", "contract", "local", "graph")


def _queue_position(item: pytest.Item) -> int:
    folder = Path(item.path).resolve().relative_to(TESTS).parts[0]
    return LONGEST_FIRST.index(folder) if folder in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_queue_position)  # stable: each module stays whole and in its order
    for item in items:
        if item.get_closest_marker("postgres") or "pg_server_url" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)


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
