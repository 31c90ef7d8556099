"""Backups: one SQLite file for either backend, consistent while jobs write, restorable into PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from monitoring.core.db import Database, sqlite_url
from monitoring.domain.decisions.decision import decide
from monitoring.state.backup import copy_rows, file_problems, store_tables, write_backup
from monitoring.state.identity import read_identity, write_identity
from monitoring.state.store import StateStore
from tests.decisions.decisions_support import CRN, HOUR, T0, p_abs, p_min, window


def filled(url: str) -> StateStore:
    store = StateStore(url)
    write_identity(store.db, "project-a", "telco", T0)
    store.record_deployment("telco", CRN, "m", "b1", "v1", T0, "initial")
    store.upsert_windows([window(i, 0.9 - i / 100) for i in range(24)])
    store.label_queue.add([(f"u{i}", CRN, i % 2, T0 + i, None) for i in range(500)])
    store.label_queue.mark_posted([f"u{i}" for i in range(250)], T0 + HOUR)
    for i in range(3):
        store.add_decision(
            decide([window(i, 0.6)], [p_min(100), p_abs(0.8)], 1, 2 * HOUR, 3, [], T0 + i * HOUR, "telco", CRN, None)
        )
    store.set_watermark(CRN, T0 + 5 * HOUR)
    store.aggregates.intend(CRN, T0, T0 + HOUR, "run-1", T0)
    return store


def contents(db: Database) -> dict[str, list[tuple]]:
    return {
        t: sorted(map(tuple, db.query(f"SELECT * FROM {t}")), key=repr)
        for t in store_tables(db)
        if t != "sqlite_sequence"
    }


def test_a_backup_is_one_sound_file_with_every_row(store_url, tmp_path):
    with filled(store_url) as store:
        out = write_backup(store.db, tmp_path / "backups" / "b.db")
        original = contents(store.db)
    assert sorted(p.name for p in out.parent.iterdir()) == ["b.db"]  # no -wal, -journal or .part beside it
    assert file_problems(out) == []
    copy = Database(sqlite_url(out))
    try:
        assert contents(copy) == original
        assert read_identity(copy).model == "telco"
    finally:
        copy.close()


@pytest.mark.postgres
def test_a_postgresql_store_is_restored_from_its_backup_and_keeps_counting(new_pg_database, tmp_path):
    with filled(new_pg_database("state")) as store:
        backup = write_backup(store.db, tmp_path / "b.db")
        original = contents(store.db)
    with StateStore(sqlite_url(backup)) as source, StateStore(new_pg_database("restored")) as target:
        target.label_queue.add([("stale", CRN, 1, 1, None)])  # replaced, not merged
        copy_rows(source.db, target.db)
        assert contents(target.db) == original
        new = target.add_decision(
            decide([window(9, 0.6)], [p_min(100), p_abs(0.8)], 1, 2 * HOUR, 3, [], T0 + 9 * HOUR, "telco", CRN, None)
        )
        assert target.latest_decision("telco").id == new  # the sequence continues after the restored rows


@pytest.mark.slow
def test_an_online_backup_is_consistent_while_another_process_writes(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    filled(url).close()
    writer = subprocess.Popen([sys.executable, "-c", WRITER, url], stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    try:
        with StateStore(url) as store:
            backups = [write_backup(store.db, tmp_path / f"b{i}.db") for i in range(3)]
    finally:
        writer.terminate()
        writer.communicate(timeout=60)
    seen = []
    for b in backups:
        assert file_problems(b) == []
        db = Database(sqlite_url(b))
        try:
            written = db.query_one("SELECT COUNT(*) FROM pending_labels WHERE uuid LIKE 'w%'")[0]
            assert written % 100 == 0  # whole batches only: a snapshot, never half a transaction
            seen.append(written)
            assert db.query_one("SELECT COUNT(*) FROM pending_labels WHERE uuid LIKE 'u%'")[0] == 500
        finally:
            db.close()
    assert min(seen) >= 100  # the writer was at work during every backup


WRITER = """
import sys
from monitoring.state.store import StateStore
store = StateStore(sys.argv[1])
for b in range(100000):
    store.label_queue.add([(f"w{b:06d}-{i}", "crn", 1, i, None) for i in range(100)])
    if b == 0:
        print("writing", flush=True)
"""


def test_backup_rows_survive_a_threaded_writer(tmp_path):
    """The same in one process: a writer thread and the backup share the store's database."""
    store = filled(f"sqlite:///{tmp_path / 'state.db'}")
    stop = threading.Event()

    def write() -> None:
        b = 0
        while not stop.is_set():
            store.label_queue.add([(f"t{b:06d}-{i}", CRN, 1, i, None) for i in range(50)])
            b += 1

    t = threading.Thread(target=write)
    t.start()
    try:
        out = write_backup(store.db, tmp_path / "b.db")
    finally:
        stop.set()
        t.join()
        store.close()
    assert file_problems(out) == []
