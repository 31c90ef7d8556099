"""Schema versions: a version-1 store is migrated at open, keeps its data and ends like a fresh one."""

from __future__ import annotations

import subprocess
import sys

import pytest

from monitoring.core.db import Database
from monitoring.core.errors import LockedError, StoreError
from monitoring.state import migrations
from monitoring.state.backup import store_tables
from monitoring.state.migrations import LATEST, STORE_TABLES, add_column, table_columns
from monitoring.state.store import _SCHEMA, StateStore
from tests.state.support import HERE, lock_held

V1 = (HERE / "schema_v1.sql").read_text()
CRN = "crn:deployment-1"


def v1_store(url: str) -> None:
    """A store exactly as release 1 wrote it, with a little history."""
    db = Database(url)
    db.script(V1.format(pk=db.autoincrement_pk))
    db.execute("INSERT INTO schema_version (version) VALUES (1)")
    db.execute(
        "INSERT INTO deployments (deployment_crn, model, model_crn, build_id, version, deployed_ms, reason) "
        "VALUES (?, 'telco', 'm', 'b1', 'v1', 100, 'initial')",
        (CRN,),
    )
    db.execute("INSERT INTO watermarks (deployment_crn, ms) VALUES (?, 500)", (CRN,))
    db.execute("INSERT INTO pending_labels (uuid, deployment_crn, label, due_ms) VALUES ('u1', ?, 1, 200)", (CRN,))
    db.close()


def schema(db: Database) -> dict[str, list[str]]:
    tables = [
        t
        for t in (
            "schema_version",
            "scenario",
            "pending_labels",
            "deployments",
            "watermarks",
            "windows",
            "decisions",
            "store_identity",
            "store_settings",
            "leases",
            "aggregates_sent",
        )
    ]
    return {t: sorted(table_columns(db, t)) for t in tables}


def test_the_baseline_is_frozen():
    """Version 1 never changes: a schema change is a new migration, or old stores would never get it."""
    frozen = "\n".join(line for line in V1.splitlines() if not line.startswith("--")).strip()
    assert _SCHEMA.strip() == frozen, "store._SCHEMA (version 1) was edited: add a Migration instead"


def test_a_version_1_store_is_migrated_at_open_and_keeps_its_data(store_url, tmp_path):
    v1_store(store_url)
    with StateStore(store_url) as store:
        assert store.schema_version() == LATEST
        versions = store.db.query("SELECT version FROM schema_version ORDER BY version")
        assert versions == [(v,) for v in range(1, LATEST + 1)]
        assert [d.version for d in store.deployments("telco")] == ["v1"]
        assert store.watermark(CRN) == 500 and store.label_queue.due(300, 10) == [("u1", 1)]
        migrated = schema(store.db)
    fresh_url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with StateStore(fresh_url) as fresh:
        assert migrated == schema(fresh.db)


def test_opening_a_current_store_reads_only(store_url):
    """A store at the latest version opens while another process holds its write lock; a write then waits."""
    StateStore(store_url).close()
    with lock_held(store_url, table="watermarks"):
        store = StateStore(store_url, busy_timeout_ms=300)
        try:
            assert store.schema_version() == LATEST and store.watermark(CRN) is None
            with pytest.raises(LockedError, match=r"stayed locked by another process for more than 0.3s") as err:
                store.set_watermark(CRN, 5)
            assert err.value.exit_code == 9 and "find the process holding" in err.value.action
        finally:
            store.close()
    with StateStore(store_url) as store:
        assert store.watermark(CRN) is None  # the refused write left nothing


@pytest.mark.slow  # worker processes
def test_migrating_processes_at_once_apply_each_version_once(store_url):
    v1_store(store_url)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", OPEN_AND_PRINT, store_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    outs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0, 0]
    assert outs == [[str(LATEST)]] * 4
    with StateStore(store_url) as store:
        versions = store.db.query("SELECT version FROM schema_version ORDER BY version")
        assert versions == [(v,) for v in range(1, LATEST + 1)]


OPEN_AND_PRINT = """
import sys
from monitoring.core.db import Database
db = Database(sys.argv[1]); db.query_one("SELECT 1"); print("ready", flush=True); sys.stdin.readline()
from monitoring.state.store import StateStore
with StateStore(sys.argv[1]) as s: print(s.schema_version())
"""


def test_add_column_is_idempotent_and_a_new_migration_reaches_old_stores(store_url, monkeypatch):
    v1_store(store_url)
    step = migrations.Migration(LATEST + 1, "a window column", lambda db: add_column(db, "windows", "extra", "TEXT"))
    monkeypatch.setattr(migrations, "MIGRATIONS", (*migrations.MIGRATIONS, step))
    monkeypatch.setattr(migrations, "LATEST", LATEST + 1)
    with StateStore(store_url) as store:
        assert "extra" in table_columns(store.db, "windows")
        add_column(store.db, "windows", "extra", "TEXT")  # a second time changes nothing
        assert table_columns(store.db, "windows").count("extra") == 1
        assert store.db.query_one("SELECT MAX(version) FROM schema_version")[0] == LATEST + 1


def test_a_store_from_a_newer_release_is_refused_untouched(store_url):
    StateStore(store_url).close()
    db = Database(store_url)
    db.execute("INSERT INTO schema_version (version) VALUES (?)", (LATEST + 5,))
    db.close()
    with pytest.raises(StoreError, match=f"schema version {LATEST + 5}, newer than") as err:
        StateStore(store_url)
    assert err.value.exit_code == 7 and "upgrade cml-monitor" in err.value.action


def test_store_tables_names_every_table_of_a_fresh_store(store_url):
    """A rebuild drops exactly these (on a shared PostgreSQL schema, no other application's table)."""
    with StateStore(store_url) as store:
        assert tuple(store_tables(store.db)) == STORE_TABLES


def store_at_version(store_url: str, version: int, metric_column: str, values: str) -> Database:
    """A store migrated up to ``version`` only, holding one window (its counts, JSON and one metric given)."""
    v1_store(store_url)
    db = Database(store_url)
    with db.transaction() as tx:
        for step in migrations.MIGRATIONS:
            if step.version <= version:
                step.apply(tx)
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (step.version,))
        tx.execute(
            "INSERT INTO windows (deployment_crn, start_ms, end_ms, predictions, labelled, confusion, drift, "
            f"{metric_column}) VALUES (?, 0, 3600000, {values})",
            (CRN,),
        )
    return db


def test_a_version_7_stores_windows_are_kept_and_new_ones_count_the_rows_mape_leaves_out(store_url):
    """Version 8 adds ``windows.zero_targets``: windows stored before it read as not known (None),
    and a regressor's window written after it keeps its count of target-0 rows."""
    db = store_at_version(store_url, 7, "metric_mape", "1014, 1014, '{}', '{}', 0.12")
    assert "zero_targets" not in table_columns(db, "windows")
    db.close()
    with StateStore(store_url) as store:
        assert store.schema_version() == LATEST >= 8
        (old,) = store.windows(deployment_crn=CRN)
        assert (old.mape, old.labelled, old.zero_targets) == (0.12, 1014, None)
        store.upsert_windows([{**old.to_dict(), "start_ms": 3600000, "end_ms": 7200000, "zero_targets": 109}])
        assert [w.zero_targets for w in store.windows(deployment_crn=CRN)] == [None, 109]


def test_a_version_9_stores_windows_read_without_estimates_and_new_ones_keep_theirs(store_url):
    """Version 10 adds ``windows.estimated`` (issue 24): windows stored before it have no estimate, and a
    window written after it keeps its estimate, interval, realized metric and estimation error."""
    db = store_at_version(store_url, 9, "metric_accuracy", "300, 250, '{}', '{}', 0.9")
    assert "estimated" not in table_columns(db, "windows")
    db.close()
    estimate = {"accuracy": {"value": 0.88, "low": 0.85, "high": 0.91, "rows": 300, "realized": 0.9, "error": -0.02}}
    with StateStore(store_url) as store:
        assert store.schema_version() == LATEST >= 10
        (old,) = store.windows(deployment_crn=CRN)
        assert old.estimated == {} and old.estimate("accuracy") is None
        store.upsert_windows([{**old.to_dict(), "start_ms": 3600000, "end_ms": 7200000, "estimated": estimate}])
        new = store.windows(deployment_crn=CRN)[1]
        assert new.estimated == estimate and new.estimate("accuracy")["error"] == -0.02
