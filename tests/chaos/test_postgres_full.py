"""The metrics store and the state store on a real PostgreSQL server whose disk fills up.

Each test's database lives in a tablespace on a real 8 MB tmpfs (the server's own files and
write-ahead log stay on the machine's disk), so a write that needs a new page fails as it does on
a full data disk: SQLSTATE 53100, "could not extend file". The stores must say so (the server's
disk is full, nothing was written), keep what they held, and work again once space is freed,
without a restart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from localcml.core.errors import NoSpaceError as MetricsStoreFull
from localcml.metrics.store import MetricsStore
from monitoring.core.errors import EXIT_NO_SPACE, NoSpaceError
from monitoring.state.store import StateStore
from tests.state.support import fill, small_file_system

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

#: What the filler leaves free: less than the pages the writes below need.
LEAVE_BYTES = 16 * 1024
CRN = "crn:cdp:ml:local:test:workspace:ws/deployment-1"


@pytest.fixture
def small_database(pg_server_url) -> Iterator[tuple[str, Path]]:
    """``(url, file system)``: a fresh database whose tables live on a real 8 MB tmpfs."""
    import psycopg
    from psycopg import sql

    mount = Path(tempfile.mkdtemp(prefix="cml-monitor-pgfs-"))  # the postgres user can reach it
    name = f"full_{uuid.uuid4().hex[:12]}"
    try:
        with small_file_system(mount, "8m") as fs:
            location = fs / "tablespace"
            location.mkdir()
            if os.geteuid() == 0:
                shutil.chown(location, "postgres", "postgres")
            with psycopg.connect(pg_server_url, autocommit=True) as conn:
                conn.execute(sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(sql.Identifier(name), str(location)))
                conn.execute(
                    sql.SQL("CREATE DATABASE {} TABLESPACE {}").format(sql.Identifier(name), sql.Identifier(name))
                )
            try:
                yield urlsplit(pg_server_url)._replace(path="/" + name).geturl(), fs
            finally:
                with psycopg.connect(pg_server_url, autocommit=True) as conn:
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                    conn.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))
    finally:
        shutil.rmtree(mount, ignore_errors=True)


def _first_failure(write: Callable[[int], None], limit: int = 20_000) -> tuple[int, NoSpaceError | MetricsStoreFull]:
    """Call ``write(0)``, ``write(1)``, ... until one raises the library's or the workspace's NoSpaceError;
    returns its number and the error."""
    for i in range(limit):
        try:
            write(i)
        except (NoSpaceError, MetricsStoreFull) as exc:
            return i, exc
    raise AssertionError(f"{limit} writes on a full disk all succeeded")


def _record(store: MetricsStore, i: int, tag: str = "") -> None:
    metrics = {"input_features": {"x": float(i), "pad": "p" * 400}, "prediction": i % 2}
    store.track_prediction(CRN, "", "", f"{tag}u{i}", 1_000 + i, 1_001 + i, metrics)


def test_the_metrics_store_on_a_full_postgresql_disk_says_so_keeps_its_records_and_recovers(small_database):
    url, fs = small_database
    store = MetricsStore(url)
    try:
        for i in range(50):
            _record(store, i, "before-")
        filler = fill(fs, LEAVE_BYTES)
        failed_at, error = _first_failure(lambda i: _record(store, i, "full-"))
        text = str(error)
        assert "the database server's disk is full" in text and "nothing was written" in text, text
        assert "could not extend file" in text or "No space left" in text, text
        assert f"full-u{failed_at}" in text  # names the record it could not write
        assert store.count() == 50 + failed_at  # every record before the failure, none of the failed one
        uuids = {r["predictionUuid"] for r in store.read(CRN)}
        assert f"full-u{failed_at}" not in uuids and {f"before-u{i}" for i in range(50)} <= uuids
        with pytest.raises(MetricsStoreFull):  # still full: a label merge fails the same way, the record unchanged
            for i in range(200):
                store.track_delayed({"final_label": 1, "pad": "q" * 2000}, f"before-u{i % 50}")
        filler.unlink()
        _record(store, failed_at, "full-")  # no restart: the next write works
        store.track_delayed({"final_label": 0}, "before-u0")
        assert store.count() == 50 + failed_at + 1
        assert next(r for r in store.read(CRN) if r["predictionUuid"] == "before-u0")["metrics"]["final_label"] == 0
    finally:
        store.close()


def test_the_state_store_on_a_full_postgresql_disk_fails_with_exit_8_and_keeps_what_it_held(small_database):
    url, fs = small_database
    store = StateStore(url)
    try:
        queue = store.label_queue
        queue.add([(f"kept-{i}", CRN, 1, 10_000 + i, 5_000 + i) for i in range(100)])
        filler = fill(fs, LEAVE_BYTES)

        def add_batch(i: int) -> None:
            queue.add([(f"full-{i}-{j}", CRN, "x" * 200, 20_000 + j, 9_000 + j) for j in range(200)])

        failed_at, error = _first_failure(add_batch)
        assert error.exit_code == EXIT_NO_SPACE, error
        assert "the database server's disk is full" in str(error), error
        held = {str(r[0]) for r in store.db.query("SELECT uuid FROM pending_labels")}
        assert {f"kept-{i}" for i in range(100)} <= held
        assert not any(u.startswith(f"full-{failed_at}-") for u in held), "a failed batch was stored in part"
        assert len(held) == 100 + 200 * failed_at
        filler.unlink()
        add_batch(failed_at)
        assert store.db.query_one("SELECT COUNT(*) FROM pending_labels")[0] == 100 + 200 * (failed_at + 1)
    finally:
        store.close()
