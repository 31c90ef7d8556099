"""A state store that cannot take writes is the store's fault: exit 7 naming it and what to change, never exit 1.

Made read-only for real, in ways root respects too (the tests run as root, which file permission
bits do not stop): a read-only bind mount of the store's directory, an immutable file
(``chattr +i``), a PostgreSQL database whose transactions are read-only, and a role that may only
SELECT.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from monitoring.core.db import Database
from monitoring.core.errors import EXIT_STORE, StoreError
from monitoring.state.health import StoreOpening
from monitoring.state.store import StateStore
from tests.project import REPO
from tests.state.support import JOB_SCRIPTS, one_verdict, project, run_jobs, verdict
from tests.state.test_health import T0, opened, with_history

pytestmark = pytest.mark.slow

LABELS = [(f"late-{i}", "crn-1", i % 2, T0 + i, None) for i in range(5)]


def root_only(what: str) -> None:
    if os.geteuid() != 0:
        pytest.skip(f"{what} needs root (CI runs as root)")


def _run(*cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(cmd), capture_output=True, text=True)


@contextlib.contextmanager
def read_only_mount(directory: Path) -> Iterator[Path]:
    """``directory`` bind-mounted read-only over itself for the block (as a container's read-only volume)."""
    root_only("a read-only bind mount")
    done = _run("mount", "--bind", str(directory), str(directory))
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.strip()}")
    try:
        done = _run("mount", "-o", "remount,bind,ro", str(directory))
        assert done.returncode == 0, done.stderr
        yield directory
    finally:
        _run("umount", str(directory))


@contextlib.contextmanager
def immutable(path: Path) -> Iterator[Path]:
    """``path`` with the immutable attribute for the block: no one, root included, may write it."""
    root_only("chattr +i")
    done = _run("chattr", "+i", str(path))
    if done.returncode != 0:
        pytest.skip(f"cannot set the immutable attribute here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        _run("chattr", "-i", str(path))


@pytest.fixture
def root(tmp_path):
    """The project directory; a workspace that a run started when it should have refused is stopped after."""
    path = tmp_path / "p"
    yield path
    if (path / ".cml-local").exists():
        environ = {**os.environ, "PYTHONPATH": str(REPO)}
        subprocess.run(
            [sys.executable, "-m", "monitoring.app.cli", "local", "down", "--project-root", str(path)],
            env=environ,
            capture_output=True,
            timeout=120,
        )


def read_only(how: str, db_file: Path) -> tuple[contextlib.AbstractContextManager, str, str]:
    """The way to make the store read-only, what the refusal must say, and the fix it must name."""
    if how == "read-only mount":
        var = db_file.parent
        return read_only_mount(var), f"its file system ({var}) is mounted read-only", f"remount {var} read-write"
    return (
        immutable(db_file),
        f"{db_file} is not writable by the user this job runs as (uid 0)",
        f"give that user write permission on {db_file}",
    )


@pytest.mark.parametrize("how", ["read-only mount", "immutable file"])
def test_every_job_refuses_a_read_only_store_with_exit_7_naming_it(root, how):
    cfg = project(root)
    db_file = with_history(root, cfg)
    before = db_file.read_bytes()
    made, said, fix = read_only(how, db_file)
    with made:
        results = run_jobs(root)
    assert sorted(results) == sorted(JOB_SCRIPTS)
    line = one_verdict(results, EXIT_STORE)
    assert "status=failed exit_code=7 error=StoreError" in line
    assert f"state store {db_file} is read-only: {said}" in line
    assert f'action="{fix}' in line and 'then re-run; nothing was written"' in line
    assert db_file.read_bytes() == before
    assert not (root / ".cml-local").exists()  # refused before the platform was reached
    with opened(root, cfg) as store:  # writable again: the same store opens and takes writes
        store.label_queue.add(LABELS)
        assert store.label_queue.counts()["pending"] == 305


def test_a_write_that_meets_a_read_only_file_or_mount_is_the_stores_error(tmp_path):
    """What the driver says at the write ("attempt to write a readonly database", "unable to open
    database file") becomes the same refusal, for a store that turned read-only after the job's check."""
    var = tmp_path / "var"
    url = f"sqlite:///{var / 'state.db'}"
    StateStore(url).close()
    assert sorted(p.name for p in var.iterdir()) == ["state.db"]  # its WAL files go with its last connection
    with read_only_mount(var):
        with pytest.raises(StoreError, match=rf"is read-only: its file system \({var}\) is mounted read-only"):
            StateStore(url)  # WAL mode: even a read needs files SQLite cannot create there
        with pytest.raises(StoreError, match=rf"is read-only: its file system \({var}\) is mounted read-only"):
            Database(f"sqlite:///{var / 'new' / 'state.db'}", what="state store")  # its directory cannot be made
    with immutable(var / "state.db"):
        store = StateStore(url)  # at the current schema, opening only reads
        try:
            with pytest.raises(StoreError, match=r"state store .*state.db is read-only: .* is not writable") as err:
                store.label_queue.add(LABELS)
            assert err.value.exit_code == EXIT_STORE and "`chattr -i` removes it" in err.value.action
        finally:
            store.close()
    with StateStore(url) as store:  # writable again: the same store takes the same write
        store.label_queue.add(LABELS)
        assert store.label_queue.counts()["pending"] == len(LABELS)


@contextlib.contextmanager
def select_only_role(owner_url: str) -> Iterator[tuple[str, str]]:
    """A new role that may connect and SELECT the store's tables, nothing more; dropped afterwards."""
    import psycopg

    role = f"reader_{uuid.uuid4().hex[:8]}"
    database = urlsplit(owner_url).path.lstrip("/")
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
        conn.execute(f"GRANT CONNECT ON DATABASE {database} TO {role}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")
    parts = urlsplit(owner_url)
    try:
        yield role, parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port}").geturl()
    finally:
        with psycopg.connect(owner_url, autocommit=True) as conn:
            conn.execute(f"DROP OWNED BY {role}")
            conn.execute(f"DROP ROLE {role}")


@pytest.mark.postgres
@pytest.mark.parametrize("how", ["read-only transactions", "select-only role"])
def test_a_read_only_postgresql_store_is_refused_naming_what_to_change(root, new_pg_database, how):
    import psycopg

    owner_url = new_pg_database("readonly")
    with opened(root, project(root, {"state": {"url": owner_url}})) as store:
        store.record_deployment("telco-cell-tower-failure", "crn-1", "m", "b1", "v1", T0, "initial")
    with contextlib.ExitStack() as undo:
        if how == "read-only transactions":
            with psycopg.connect(owner_url, autocommit=True) as conn:
                conn.execute(
                    f"ALTER DATABASE {urlsplit(owner_url).path.lstrip('/')} SET default_transaction_read_only = on"
                )
            url = owner_url
            said = "is read-only: the server runs this role's transactions read-only (default_transaction_read_only"
            fix = "`ALTER ROLE <role> SET default_transaction_read_only = off`"
        else:
            role, url = undo.enter_context(select_only_role(owner_url))
            said = (
                f"is read-only: role {role} lacks a privilege (it may not insert, update or delete in aggregates_sent"
            )
            fix = f"grant {role} SELECT, INSERT, UPDATE and DELETE on the store's tables"
        cfg = project(root, {"state": {"url": url}})
        with pytest.raises(StoreError, match=re.escape(said)) as err:
            StoreOpening(cfg, root)  # before the platform is reached
        assert err.value.exit_code == EXIT_STORE and fix in err.value.action
        code, out = run_jobs(root, ("compute_accuracy",))["compute_accuracy"]
        line = verdict(out)
        assert code == EXIT_STORE and "status=failed exit_code=7 error=StoreError" in line, line
        assert said in line and fix in line and not (root / ".cml-local").exists()
        store = StateStore(url)  # a write that meets it: the server's refusal, translated
        try:
            with pytest.raises(StoreError, match=re.escape(said.split(" (")[0])) as err:
                store.label_queue.add(LABELS)
            assert fix in err.value.action
        finally:
            store.close()
