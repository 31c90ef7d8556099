"""Shared fixtures (one throwaway PostgreSQL server per test session, a fresh database per test) and the tiers.

A test is marked ``heavy`` when it uses a fixture that starts a local workspace, a model server, a job run,
a browser, PostgreSQL or an MLflow server (``HEAVY_FIXTURES``), or its module says so (``pytestmark``);
tests on the PostgreSQL server are marked ``slow`` too. ``make check`` (the inner loop) runs every test
of tests/ that is neither ``heavy``, ``slow`` nor ``spark``; ``make test`` runs them all. In that fast
tier a test that starts a local workspace anyway fails at once, naming the marker it lacks.
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
#: Fixtures that start a local workspace (and with it job runs, model servers, MLflow), a workspace daemon
#: or PostgreSQL: a test that uses one, directly or through another fixture, is marked ``heavy``. A test
#: module adds its own such fixtures in a module-level ``HEAVY_FIXTURES``.
HEAVY_FIXTURES = frozenset(
    {
        "ws",  # tests/local, tests/cmlclient: a started local workspace
        "workspace",  # tests/graph: started empty workspaces
        "template",  # tests/faults: a bootstrapped project on a workspace (once per session)
        "rig",  # tests/faults: a fresh copy of it on a started workspace
        "make_pipeline",  # tests/integration: a pipeline on a fresh workspace
        "start_daemon",  # tests/chaos: a workspace daemon process
        "pg_server_url",  # tests/conftest: a PostgreSQL server
    }
)
#: Folders whose every test starts a local workspace, its daemon, a job run or an MLflow server: marked ``heavy``.
HEAVY_FOLDERS = ("integration", "chaos", "graph", "local", "experiments", "lifecycle", "spark")
#: The markers ``make check`` leaves out.
NOT_FAST = ("heavy", "slow", "spark")
_GUARD = pytest.StashKey[pytest.MonkeyPatch]()


def _folder(item: pytest.Item) -> str:
    path = Path(item.path).resolve()
    return path.relative_to(TESTS).parts[0] if path.is_relative_to(TESTS) else ""


def _queue_position(item: pytest.Item) -> int:
    folder = _folder(item)
    return LONGEST_FIRST.index(folder) if folder in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    items.sort(key=_queue_position)  # stable: each module stays whole and in its order
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        heavy = HEAVY_FIXTURES | set(getattr(getattr(item, "module", None), "HEAVY_FIXTURES", ()))
        if fixtures & heavy or _folder(item) in HEAVY_FOLDERS:
            item.add_marker(pytest.mark.heavy)
        if item.get_closest_marker("postgres") or "pg_server_url" in fixtures:
            item.add_marker(pytest.mark.slow)
            item.add_marker(pytest.mark.heavy)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Outside ``heavy``, ``slow`` and ``spark``, starting a local workspace (in the test or in any of its
    fixtures, whatever their scope) fails the test at once."""
    if any(item.get_closest_marker(name) for name in NOT_FAST):
        return
    from localcml.workspace import LocalWorkspace

    def refuse(self, *args, **kwargs):
        pytest.fail(
            f"{item.nodeid} starts a local workspace but is not marked `heavy`: use a fixture of HEAVY_FIXTURES "
            "(tests/conftest.py), name the fixture in the module's own HEAVY_FIXTURES, or mark the module "
            "`pytestmark = pytest.mark.heavy`"
        )

    patch = pytest.MonkeyPatch()
    patch.setattr(LocalWorkspace, "start", refuse)
    item.stash[_GUARD] = patch


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    patch = item.stash.get(_GUARD, None)
    if patch is not None:
        patch.undo()


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
