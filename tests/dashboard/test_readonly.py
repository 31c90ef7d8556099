"""The dashboard opens the state store read-only: a write fails on SQLite and on PostgreSQL, nothing is created."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from monitoring.app.dashboard.content import Content
from monitoring.core.errors import DataError
from monitoring.state.store import StateStore
from tests.dashboard.support import filled, store_config
from tests.report.report_support import HOSTILE, fill


def test_a_sqlite_store_opened_read_only_reads_and_refuses_every_write(tmp_path):
    db = tmp_path / "state.db"
    filled(db)
    before = db.read_bytes()
    with StateStore(f"sqlite:///{db}", read_only=True) as store:
        assert len(store.windows(model=HOSTILE)) == 13 and store.latest_decision(HOSTILE) is not None
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.db.execute("DELETE FROM decisions")
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.record_deployment(HOSTILE, "crn-x", None, None, "v9", 1, "hand")
        with pytest.raises(sqlite3.OperationalError):
            store.db.execute("CREATE TABLE sneaky (x INTEGER)")
    with StateStore(f"sqlite:///{db}") as store:
        assert len(store.list_decisions(HOSTILE)) == 3 and len(store.deployments(HOSTILE)) == 3
    assert db.read_bytes() == before


def test_a_missing_or_empty_store_is_a_clear_error_and_is_not_created(tmp_path):
    missing = tmp_path / "var" / "state.db"
    with pytest.raises(DataError, match="no state store at .*state.db: the pipeline has not run here yet"):
        StateStore(f"sqlite:///{missing}", read_only=True)
    assert not missing.exists()
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(DataError, match="has no pipeline tables yet"):
        StateStore(f"sqlite:///{empty}", read_only=True)


def test_a_postgresql_store_is_read_in_read_only_transactions(new_pg_database, tmp_path):
    url = new_pg_database("dash")
    with StateStore(url) as writer:
        fill(writer, HOSTILE)
    cfg = store_config(tmp_path / "unused.db", edit=lambda d: d["state"].update(url=url))
    with StateStore(url, read_only=True) as store:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            store.db.execute("DELETE FROM decisions")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            store.label_queue.add([("u-1", "crn", 1, 5, None)])
        content = Content(store, cfg)
        status = content.status(HOSTILE)
        assert status["deployment"]["version"] == "v1" and status["latest_window"]["value"] == pytest.approx(0.9)
    with StateStore(url) as writer:
        assert len(writer.list_decisions(HOSTILE)) == 3
