"""StateStore on a real database: schema, exactly-once labels and claims, watermarks, windows, decisions."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from decisions_support import CRN, HOUR, T0, p_abs, p_min, window

from monitoring.core.errors import DataError, StoreError
from monitoring.domain.decisions.decision import decide
from monitoring.domain.records.columns import Columns
from monitoring.domain.windows.bounds import BoundRequest, wilson_interval
from monitoring.domain.windows.compute import compute_windows
from monitoring.domain.windows.results import METRICS, WindowMetrics
from monitoring.state.migrations import TASK_METRIC_COLUMNS
from monitoring.state.store import (
    _FIRST_METRICS,
    _SCHEMA,
    ADDED_WINDOW_COLUMNS,
    SCHEMA_VERSION,
    DeploymentRow,
    StateStore,
)

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ["x'; DROP TABLE decisions; --", "quote \" and ' both", "Robert'); DROP TABLE windows;--", "ünï ☃ \\ %s ?"]


def a_decision(model="telco", crn=CRN, now=T0 + 10 * HOUR, accuracy=0.6):
    return decide([window(0, accuracy, crn=crn)], [p_min(100), p_abs(0.8)], 1, 2 * HOUR, 3, [], now, model, crn, None)


# -- schema -----------------------------------------------------------------------------------------
def test_schema_creation_is_idempotent_and_keeps_data(store_url):
    with StateStore(store_url) as first:
        first.set_watermark(CRN, 5)
    with StateStore(store_url) as second, StateStore(store_url) as third:
        assert second.schema_version() == third.schema_version() == SCHEMA_VERSION
        versions = second.db.query("SELECT version FROM schema_version ORDER BY version")
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        assert third.watermark(CRN) == 5


def test_newer_schema_is_refused(store):
    store.db.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreError, match=f"schema version {SCHEMA_VERSION + 1}, newer than"):
        StateStore(store.db.url)


# -- scenario epoch ---------------------------------------------------------------------------------
def test_scenario_epoch_is_set_once(store):
    assert store.scenario_epoch("telco") is None
    assert store.set_scenario_epoch_if_absent("telco", 1000) == 1000
    assert store.set_scenario_epoch_if_absent("telco", 2000) == 1000
    assert store.scenario_epoch("telco") == 1000 and store.scenario_epoch("other") is None


# -- pending labels ---------------------------------------------------------------------------------
def test_pending_labels_are_added_once_and_posted_once(store):
    store.label_queue.add(
        [("u3", CRN, 1, 300, None), ("u1", CRN, 0, 100, None), ("u2", CRN, 1, 100, None), ("u4", CRN, 0, 999, None)]
    )
    store.label_queue.add([("u1", CRN, 1, 50, None)])  # a known uuid is ignored, label and due time unchanged
    assert store.label_queue.due(300, 10) == [("u1", 0), ("u2", 1), ("u3", 1)]
    assert store.label_queue.due(300, 2) == [("u1", 0), ("u2", 1)]
    assert store.label_queue.mark_posted(["u1", "u2"], 310) == 2
    assert store.label_queue.mark_posted(["u2", "u3"], 320) == 1  # u2 again is a no-op
    assert store.db.query("SELECT uuid, posted_ms FROM pending_labels WHERE posted_ms IS NOT NULL ORDER BY uuid") == [
        ("u1", 310),
        ("u2", 310),
        ("u3", 320),
    ]
    assert store.label_queue.due(10_000, 10) == [("u4", 0)]
    assert store.label_queue.counts() == {"pending": 1, "posted": 3}
    # one address: the store itself has no method for pending labels, it holds their queue
    assert [name for name in vars(StateStore) if "label" in name] == []


# -- deployments ------------------------------------------------------------------------------------
def test_deployment_history_and_current(store):
    assert store.current_deployment("telco") is None
    store.record_deployment("telco", "crn-a", "model-crn", "b1", "v1", 100, "initial")
    store.record_deployment("telco", "crn-b", "model-crn", "b2", "v2", 200, "accuracy breach")
    store.record_deployment("telco", "crn-a", "other", "bX", "vX", 300, "again")  # same crn: unchanged
    store.record_deployment("other", "crn-c", None, None, None, 999, None)
    assert store.current_deployment("telco") == DeploymentRow(
        "telco", "crn-b", "model-crn", "b2", "v2", 200, "accuracy breach"
    )
    assert [d.deployment_crn for d in store.deployments("telco")] == ["crn-a", "crn-b"]
    assert store.deployments("telco")[0].build_id == "b1"


# -- watermarks -------------------------------------------------------------------------------------
def test_watermark_never_moves_backwards(store):
    assert store.watermark(CRN) is None
    assert store.set_watermark(CRN, 1000) == 1000
    assert store.set_watermark(CRN, 999) == 1000
    assert store.set_watermark(CRN, 1000) == 1000
    assert store.set_watermark(CRN, 1001) == 1001
    assert store.watermark("other") is None


# -- windows ----------------------------------------------------------------------------------------
def test_windows_upsert_overwrites_and_filters(store):
    store.record_deployment("telco", CRN, None, None, None, T0, "initial")
    drift = {"iot_signal_1": {"psi": 0.12, "ks": 0.05}}
    rows = [window(1, 0.9), window(0, None, labelled=0, drift=drift), window(0, 0.7, crn="b")]
    assert store.upsert_windows(rows) == 3
    result_like = SimpleNamespace(**{**window(0, 0.8, labelled=150, drift=drift).to_dict()})
    store.upsert_windows([result_like])  # any object of that shape, recomputing window 0
    rows = store.windows(CRN)
    assert [(w.start_ms, w.accuracy, w.labelled) for w in rows] == [(T0, 0.8, 150), (T0 + HOUR, 0.9, 200)]
    assert rows[0] == window(0, 0.8, labelled=150, drift=drift)
    assert [w.start_ms for w in store.windows(CRN, since_ms=T0 + 1)] == [T0 + HOUR]
    assert [w.deployment_crn for w in store.windows(model="telco")] == [CRN, CRN]
    assert [w.deployment_crn for w in store.windows()] == ["b", CRN, CRN]
    with pytest.raises(DataError, match="confusion/drift/bounds not JSON"):
        store.upsert_windows([replace(window(2), confusion={"x": object()})])


def test_window_latency_round_trips_and_is_overwritten(store):
    rows = [
        replace(window(0), latency_p50_ms=110.0, latency_p95_ms=487.25),
        replace(window(1), latency_p50_ms=np.float64(12.5), latency_p95_ms=np.float64(99.0)),  # numpy scalars
        replace(window(2), latency_p50_ms=None, latency_p95_ms=None),
        replace(window(3), latency_p50_ms=float("nan"), latency_p95_ms=3.0),
    ]  # NaN is stored as unknown
    store.upsert_windows(rows)
    got = [(w.latency_p50_ms, w.latency_p95_ms) for w in store.windows(CRN)]
    assert got == [(110.0, 487.25), (12.5, 99.0), (None, None), (None, 3.0)]
    assert all(type(v) is float for pair in got for v in pair if v is not None)
    assert store.windows(CRN)[0] == rows[0]
    store.upsert_windows([window(0), {**window(1).to_dict(), "latency_p50_ms": 13, "latency_p95_ms": 101.5}])
    got = [(w.latency_p50_ms, w.latency_p95_ms) for w in store.windows(CRN)][:2]
    assert got == [(None, None), (13.0, 101.5)]  # recomputing a window replaces its latency too


def test_computed_windows_keep_their_latency_in_the_store(store):
    cols = Columns(
        uuid=np.array(["a", "b", "c", "d"], dtype=object),
        start_ms=np.array([T0, T0 + 1, T0 + 2, T0 + HOUR]),
        deployment_crn=np.array([CRN] * 4, dtype=object),
        prediction=np.array([1.0, 0.0, 1.0, 1.0]),
        label=np.array([1.0, 0.0, np.nan, 1.0]),
        features=np.zeros((4, 1)),
        feature_names=("f",),
        latency_ms=np.array([100.0, 300.0, 200.0, np.nan]),
    )
    results = compute_windows(cols, HOUR, bounds=[BoundRequest("accuracy")])
    assert store.upsert_windows(results) == 2
    first, second = store.windows(CRN)
    assert (first.latency_p50_ms, first.latency_p95_ms) == (200.0, 290.0)  # linear: 200 + 0.9 * 100
    assert (second.latency_p50_ms, second.latency_p95_ms) == (None, None)
    assert results[0].unknown_class == 0 and first.unknown_class is None  # not kept by the store
    assert first == replace(results[0], unknown_class=None)
    assert first.bound("accuracy", 0.95) == pytest.approx(wilson_interval(2, 2, 0.95))


def test_every_tasks_metrics_and_bounds_round_trip(store):
    bounds = {"mae@0.9": {"low": 41_000.5, "high": 52_250.0, "method": "t"}}
    regression = WindowMetrics(
        CRN, T0, T0 + HOUR, 300, 120, mae=46_000.25, rmse=61_000.0, mape=0.18, r2=0.71, bias=-1_200.5, bounds=bounds
    )
    auc = replace(window(1), roc_auc=0.87, log_loss=0.41)
    store.upsert_windows([regression, auc])
    got = store.windows(CRN)
    assert got == [regression, auc]
    assert got[0].accuracy is None and got[0].bound("mae", 0.9) == (41_000.5, 52_250.0)
    assert got[0].scores() == {"mae": 46_000.25, "rmse": 61_000.0, "mape": 0.18, "r2": 0.71, "bias": -1_200.5}


def _version_2_store(url: str, monkeypatch, interim_columns: bool = False) -> None:
    """A store as the release before the task metrics wrote it (schema version 2), with one window;
    ``interim_columns``: with the columns the interim ``ALTER TABLE`` of the branch added already."""
    from monitoring.core.db import Database
    from monitoring.state import migrations

    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", migrations.MIGRATIONS[:1])
        patch.setattr(migrations, "LATEST", 2)
        db = Database(url)
        migrations.migrate(db, _SCHEMA.format(pk=db.autoincrement_pk))
    if interim_columns:
        migrations.add_column(db, "windows", "metric_mae", "DOUBLE PRECISION")
    db.execute(
        "INSERT INTO windows (deployment_crn, start_ms, end_ms, predictions, labelled, metric_accuracy, "
        "metric_precision, metric_recall, metric_f1, confusion, drift, latency_p50_ms, latency_p95_ms) "
        "VALUES (?, ?, ?, 250, 200, 0.9, 0.85, 0.88, 0.86, ?, ?, 110.0, 480.0)",
        (CRN, T0, T0 + HOUR, '{"tp": 10, "fp": 2, "tn": 30, "fn": 3}', '{"f": {"psi": 0.1, "ks": 0.2}}'),
    )
    if interim_columns:
        db.execute("UPDATE windows SET metric_mae = 12.5")
    db.close()


@pytest.mark.parametrize("interim", [False, True], ids=["version-2", "interim-columns"])
def test_a_store_made_before_the_task_metric_columns_is_migrated_in_place(store_url, monkeypatch, interim):
    from monitoring.state.migrations import LATEST, table_columns

    _version_2_store(store_url, monkeypatch, interim)
    for _ in range(2):  # the second open finds the latest version and changes nothing
        with StateStore(store_url) as migrated:
            assert migrated.schema_version() == LATEST
            [old] = migrated.windows(CRN)
            assert (old.accuracy, old.f1, old.latency_p95_ms, old.bounds) == (0.9, 0.86, 480.0, {})
            assert old.mae == (12.5 if interim else None) and old.drift == {"f": {"psi": 0.1, "ks": 0.2}}
    with StateStore(store_url) as migrated:
        assert set(ADDED_WINDOW_COLUMNS) <= set(table_columns(migrated.db, "windows"))
        migrated.upsert_windows([replace(old, roc_auc=0.8, bounds={"accuracy@0.95": {"low": 0.8, "high": 0.95}})])
        [again] = migrated.windows(CRN)
        assert again.roc_auc == 0.8 and again.bound("accuracy", 0.95) == (0.8, 0.95) and again.accuracy == 0.9


def test_the_store_has_a_column_for_every_metric():
    """A metric added to the registry needs its column: a new migration, or windows would lose it."""
    assert (*_FIRST_METRICS, *TASK_METRIC_COLUMNS) == METRICS
    assert (*(f"metric_{m}" for m in TASK_METRIC_COLUMNS), "bounds") == ADDED_WINDOW_COLUMNS


# -- decisions --------------------------------------------------------------------------------------
def test_decision_ids_are_time_plus_random_suffix_and_unique(store_url):
    suffixes = iter(["aaaaaa", "aaaaaa", "bbbbbb"])
    with StateStore(store_url, suffix=lambda: next(suffixes)) as s:
        d = a_decision(now=T0)
        assert s.add_decision(d) == "d-20251123080000-aaaaaa"
        assert s.add_decision(d) == "d-20251123080000-bbbbbb"  # collision retried with a new suffix
        with pytest.raises(DataError, match="already exists"):
            s.add_decision(replace(d, id="d-20251123080000-aaaaaa"))
    with StateStore(store_url) as s:
        assert re.fullmatch(r"d-20251123080000-[0-9a-f]{6}", s.add_decision(a_decision(now=T0)))


def test_decision_round_trip_latest_and_list(store):
    first = store.add_decision(a_decision(now=T0 + HOUR, accuracy=0.6))
    second = store.add_decision(a_decision(now=T0 + 2 * HOUR, accuracy=0.95))
    store.add_decision(a_decision(model="other", now=T0 + 3 * HOUR))
    got = store.decision(first)
    assert got.id == first and got.action == "redeploy" and got.values["accuracy"] == 0.6
    stored = store.db.query_one("SELECT action, body FROM decisions WHERE id = ?", (first,))
    assert stored[0] == "redeploy" and json.loads(stored[1])["action"] == "redeploy"  # plain text, as before
    assert got.results == a_decision(now=T0 + HOUR).results
    assert store.latest_decision("telco").id == second and store.latest_decision("nobody") is None
    assert [d.model for d in store.list_decisions()] == ["other", "telco", "telco"]
    assert [d.id for d in store.list_decisions("telco", limit=1)] == [second]
    assert store.decision("d-missing") is None


def test_claim_then_finish_and_redeploy_times(store):
    a = store.add_decision(a_decision(now=T0))
    b = store.add_decision(a_decision(now=T0 + HOUR))
    assert store.claim_decision(a, "run-1", T0 + 5) is True
    assert store.claim_decision(a, "run-2", T0 + 6) is False
    store.finish_decision(a, "deployed", "deployment crn-2 serving", T0 + 60_000)
    store.claim_decision(b, "run-3", T0 + HOUR)
    store.finish_decision(b, "rolled_back", "build failed", T0 + HOUR + 5)
    got = store.decision(a)
    assert (got.consumed_by, got.outcome, got.outcome_detail) == ("run-1", "deployed", "deployment crn-2 serving")
    assert store.redeploys_since("telco", T0) == [T0 + 60_000]
    assert store.redeploys_since("telco", T0 + 60_001) == []
    with pytest.raises(DataError, match="decision 'd-nope' not found"):
        store.claim_decision("d-nope", "run-1", 0)
    with pytest.raises(DataError, match="decision 'd-nope' not found"):
        store.finish_decision("d-nope", "deployed", "", 0)


def test_claim_decision_exactly_once_across_threads(store):
    decision_id = store.add_decision(a_decision())
    barrier, results = threading.Barrier(8), {}

    def claim(run_id: str) -> None:
        barrier.wait()
        results[run_id] = store.claim_decision(decision_id, run_id, T0)

    threads = [threading.Thread(target=claim, args=(f"run-{i}",)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [r for r, ok in results.items() if ok]
    assert len(results) == 8 and len(winners) == 1
    assert store.decision(decision_id).consumed_by == winners[0]


@pytest.mark.slow
def test_claim_decision_exactly_once_across_processes(store):
    decision_id = store.add_decision(a_decision())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("claim_worker.py")), store.db.url, decision_id, f"proc-{i}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for i in range(6)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready"
        for p in procs:  # release them together
            p.stdin.write("go\n")
            p.stdin.flush()
        outcomes = [p.communicate(timeout=60)[0].strip() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert sorted(outcomes) == ["claimed"] + ["refused"] * 5
    assert store.decision(decision_id).consumed_by == f"proc-{outcomes.index('claimed')}"


# -- hostile names ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_are_stored_and_read_back_verbatim(store, name):
    store.set_scenario_epoch_if_absent(name, 7)
    store.record_deployment(name, name + "-crn", name, name, name, 1, name)
    store.set_watermark(name, 9)
    store.label_queue.add([(name, name, 1, 5, None)])
    store.upsert_windows([window(0, crn=name, drift={name: {"psi": 0.1, "ks": 0.2}})])
    decision_id = store.add_decision(a_decision(model=name, crn=name))
    assert store.claim_decision(decision_id, name, 1)
    store.finish_decision(decision_id, "deployed", name, 2)
    assert store.scenario_epoch(name) == 7 and store.watermark(name) == 9
    assert store.current_deployment(name) == DeploymentRow(name, name + "-crn", name, name, name, 1, name)
    assert store.label_queue.due(5, 10) == [(name, 1)]
    assert store.windows(name)[0].drift == {name: {"psi": 0.1, "ks": 0.2}}
    got = store.latest_decision(name)
    assert (got.model, got.deployment_crn, got.consumed_by, got.outcome_detail) == (name, name, name, name)
    assert len(store.list_decisions()) == 1 and store.redeploys_since(name, 0) == [2]
