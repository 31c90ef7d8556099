"""Per-window metrics against sklearn, window alignment, multi-class macro averages, Wilson bounds."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

from monitoring.core.errors import DataError
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.records.columns import Columns
from monitoring.domain.windows import groups as window_groups
from monitoring.domain.windows.bounds import BoundRequest, wilson_interval
from monitoring.domain.windows.compute import compute_windows
from tests.domain.support import T0

HOUR = 3_600_000


def nan_none(value: float) -> float | None:
    return None if math.isnan(value) else value


A, B = "crn:dep/a", "crn:dep/b"


def columns(start, pred, label, crn=None, features=None, latency=None, classes=(0, 1), proba=None) -> Columns:
    n = len(start)
    crn_arr = np.empty(n, dtype=object)
    crn_arr[:] = crn if crn is not None else [A] * n
    feats = np.asarray(features, dtype=float) if features is not None else np.zeros((n, 1))
    return Columns(
        uuid=np.array([f"u{i}" for i in range(n)], dtype=object),
        start_ms=np.asarray(start, np.int64),
        deployment_crn=crn_arr,
        prediction=np.asarray(pred, float),
        label=np.asarray(label, float),
        features=feats,
        feature_names=tuple(f"f{j}" for j in range(feats.shape[1])),
        latency_ms=None if latency is None else np.asarray(latency, float),
        classes=tuple(classes),
        proba=None if proba is None else np.asarray(proba, float),
    )


def random_columns(seed: int, n: int, n_classes: int) -> Columns:
    rng = np.random.default_rng(seed)
    start = T0 + rng.integers(-HOUR, 5 * HOUR, n)
    pred = rng.integers(0, n_classes, n).astype(float)
    label = np.where(rng.random(n) < 0.7, np.where(rng.random(n) < 0.8, pred, rng.integers(0, n_classes, n)), np.nan)
    crn = np.where(rng.random(n) < 0.5, A, B)
    return columns(start, pred, label, crn, classes=range(n_classes))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_binary_windows_equal_sklearn_exactly(seed):
    cols = random_columns(seed, 3000, 2)
    results = compute_windows(cols, HOUR)
    assert len(results) == 12  # 6 hours x 2 deployments
    for r in results:
        mask = (cols.deployment_crn == r.deployment_crn) & (cols.start_ms >= r.start_ms) & (cols.start_ms < r.end_ms)
        y_pred, y_true = cols.prediction[mask], cols.label[mask]
        has = ~np.isnan(y_true)
        y, p = y_true[has].astype(int), y_pred[has].astype(int)
        assert r.predictions == int(mask.sum()) and r.labelled == int(has.sum())
        assert r.accuracy == accuracy_score(y, p)
        assert r.precision == nan_none(precision_score(y, p, zero_division=np.nan))
        assert r.recall == nan_none(recall_score(y, p, zero_division=np.nan))
        assert r.f1 == nan_none(f1_score(y, p, zero_division=np.nan))
        tn, fp, fn, tp = confusion_matrix(y, p, labels=[0, 1]).ravel()
        assert r.confusion == {"tp": tp, "fp": fp, "tn": tn, "fn": fn}


@pytest.mark.parametrize("seed", [4, 5])
def test_multiclass_windows_use_macro_averages_like_sklearn(seed):
    cols = random_columns(seed, 2000, 4)
    cols.prediction[cols.prediction == 3] = 2  # class 3 then appears only in some labels: macro over present classes
    for r in compute_windows(cols, HOUR):
        mask = (cols.deployment_crn == r.deployment_crn) & (cols.start_ms >= r.start_ms) & (cols.start_ms < r.end_ms)
        has = mask & ~np.isnan(cols.label)
        y, p = cols.label[has].astype(int), cols.prediction[has].astype(int)
        assert r.accuracy == accuracy_score(y, p)
        for name, fn in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
            assert getattr(r, name) == pytest.approx(fn(y, p, average="macro", zero_division=np.nan), abs=1e-12)
        assert r.confusion == {"labels": [0, 1, 2, 3], "matrix": confusion_matrix(y, p, labels=[0, 1, 2, 3]).tolist()}


def test_windows_align_to_multiples_of_the_length_since_the_epoch():
    base = 1_795_428_000_000  # 2026-11-23T10:00:00Z, a whole hour
    cols = columns(
        [base - 1, base, base + HOUR - 1, base + HOUR, base + 3 * HOUR + 5], [1, 1, 0, 0, 1], [1, 0, 0, np.nan, 1]
    )
    results = compute_windows(cols, HOUR)
    assert [(r.start_ms, r.end_ms, r.predictions, r.labelled) for r in results] == [
        (base - HOUR, base, 1, 1),
        (base, base + HOUR, 2, 2),
        (base + HOUR, base + 2 * HOUR, 1, 0),
        (base + 3 * HOUR, base + 4 * HOUR, 1, 1),
    ]
    assert results[1].accuracy == 0.5 and results[1].confusion == {"tp": 0, "fp": 1, "tn": 1, "fn": 0}
    assert (results[1].precision, results[1].recall, results[1].f1) == (0.0, None, 0.0)  # no positive label
    unlabelled = results[2]
    assert (unlabelled.accuracy, unlabelled.precision, unlabelled.recall, unlabelled.f1) == (None, None, None, None)
    fifteen = compute_windows(cols, 15 * 60_000)
    assert all(r.start_ms % (15 * 60_000) == 0 for r in fifteen)


def test_rows_without_prediction_or_outside_the_classes_are_left_out():
    cols = columns([T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4], [1, np.nan, 7, 0, 1], [1, 1, 1, 5, np.nan])
    [r] = compute_windows(cols, HOUR)
    assert (r.predictions, r.labelled, r.unknown_class, r.accuracy) == (3, 1, 2, 1.0)
    assert compute_windows(columns([T0], [np.nan], [1]), HOUR) == []


def test_drift_per_window_needs_enough_rows():
    rng = np.random.default_rng(9)
    reference = ReferenceStats.fit(pd.DataFrame({"f0": rng.normal(0, 1, 4000)}), ["f0"])
    n = 200
    start = np.concatenate([np.full(n, T0), np.full(n, T0 + HOUR), np.full(10, T0 + 2 * HOUR)])
    values = np.concatenate([rng.normal(0, 1, n), rng.normal(2, 1, n), rng.normal(0, 1, 10)])
    cols = columns(start, np.ones(2 * n + 10), np.ones(2 * n + 10), features=values[:, None])
    same, shifted, small = compute_windows(cols, HOUR, reference=reference, min_drift_rows=30)
    assert same.drift["f0"]["psi"] < 0.1 and shifted.drift["f0"]["psi"] > 1.0
    assert same.drift["f0"]["ks"] == reference.ks("f0", values[:n])
    assert shifted.drift["f0"]["psi"] == reference.psi("f0", values[n : 2 * n])
    assert small.drift == {}
    assert compute_windows(cols, HOUR)[0].drift == {}


def test_results_are_plain_dicts_and_grouped_by_deployment():
    cols = columns([T0 + 2 * HOUR, T0, T0 + HOUR], [1, 0, 1], [1, 0, 0], crn=[B, A, A])
    results = compute_windows(cols, HOUR)
    assert [(r.deployment_crn, r.start_ms) for r in results] == [(A, T0), (A, T0 + HOUR), (B, T0 + 2 * HOUR)]
    d = results[0].to_dict()
    assert d["deployment_crn"] == A and d["confusion"] == {"tp": 0, "fp": 0, "tn": 1, "fn": 0}
    assert type(d["predictions"]) is int and type(d["accuracy"]) is float


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_latency_percentiles_per_window_equal_numpy_linear_exactly(seed):
    rng = np.random.default_rng(seed)
    cols = random_columns(seed, 4000, 2)
    n = len(cols)
    latency = np.round(rng.lognormal(4, 0.8, n), int(seed % 3))  # whole ms, 0.1 ms and 0.01 ms steps
    latency[rng.random(n) < 0.15] = np.nan  # no usable endTimeStampMs
    latency[cols.deployment_crn == B] = np.where(
        cols.start_ms[cols.deployment_crn == B] < T0, np.nan, latency[cols.deployment_crn == B]
    )  # B's first hour: none at all
    cols.latency_ms = latency
    cols.prediction[rng.random(n) < 0.05] = np.nan  # rows without a prediction are in no window
    cols.prediction[rng.random(n) < 0.05] = -1  # a prediction naming no class still has a latency
    results = compute_windows(cols, HOUR)
    assert len(results) == 12
    for r in results:
        mask = (
            (cols.deployment_crn == r.deployment_crn)
            & (cols.start_ms >= r.start_ms)
            & (cols.start_ms < r.end_ms)
            & ~np.isnan(cols.prediction)
            & ~np.isnan(cols.latency_ms)
        )
        values = cols.latency_ms[mask]
        if r.deployment_crn == B and r.start_ms < T0:
            assert values.size == 0 and (r.latency_p50_ms, r.latency_p95_ms) == (None, None)
            continue
        assert values.size > 100
        assert r.latency_p50_ms == np.percentile(values, 50, method="linear")  # exact, not approx
        assert r.latency_p95_ms == np.percentile(values, 95, method="linear")
        assert type(r.latency_p50_ms) is float and type(r.latency_p95_ms) is float


def test_latency_percentiles_interpolate_linearly_and_skip_nan():
    start = [T0, T0 + 1, T0 + 2, T0 + 3, T0 + 4, T0 + HOUR, T0 + 2 * HOUR, T0 + 2 * HOUR + 1]
    latency = [40, 10, np.nan, 30, 20, 7.5, np.nan, np.nan]
    cols = columns(start, [1] * 8, [1] * 8, latency=latency)
    four, one, none = compute_windows(cols, HOUR)
    assert (four.latency_p50_ms, four.latency_p95_ms) == (25.0, 38.5)  # 20 + 0.5 * 10; 30 + 0.85 * 10
    assert (one.latency_p50_ms, one.latency_p95_ms) == (7.5, 7.5)
    assert (none.latency_p50_ms, none.latency_p95_ms) == (None, None)
    assert none.to_dict()["latency_p50_ms"] is None and four.to_dict()["latency_p95_ms"] == 38.5
    no_latency = columns(start, [1] * 8, [1] * 8)  # Columns built without latency: all NaN
    assert all(r.latency_p50_ms is None and r.latency_p95_ms is None for r in compute_windows(no_latency, HOUR))


def test_bad_arguments_are_data_errors():
    cols = columns([T0], [1], [1])
    with pytest.raises(DataError, match="window length must be positive"):
        compute_windows(cols, 0)
    with pytest.raises(DataError, match="need at least two classes"):
        compute_windows(columns([T0], [0], [0], classes=["only"]), HOUR)


@pytest.mark.parametrize(
    "successes, n, confidence, low, high",
    [
        (0, 10, 0.95, 0.0, 0.2775327998628892),
        (10, 10, 0.95, 0.7224672001371108, 1.0),
        (50, 100, 0.95, 0.4038315303659956, 0.5961684696340044),
        (81, 263, 0.95, 0.2552885198782742, 0.36620957698280004),
        (90, 100, 0.90, 0.8396444903889078, 0.9392813329845526),
    ],
)
def test_wilson_interval_known_values(successes, n, confidence, low, high):
    """Expected values from scipy.stats.binomtest(...).proportion_ci(method="wilson")."""
    got = wilson_interval(successes, n, confidence)
    assert got == pytest.approx((low, high), abs=1e-12)


def test_wilson_interval_edges():
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)
    with pytest.raises(ValueError, match="need 0 <= successes <= n"):
        wilson_interval(5, 3, 0.95)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        wilson_interval(1, 3, 1.0)


def one_deployment(seed: int, n: int, n_classes: int) -> Columns:
    """Rows of one deployment in time order (the per-window pass), with every oddity of the columns."""
    rng = np.random.default_rng(seed)
    start = np.sort(T0 + rng.integers(-HOUR, 3 * HOUR, n))
    pred = rng.integers(-1, n_classes, n).astype(float)  # -1: a prediction naming no class
    pred[rng.random(n) < 0.05] = np.nan
    pred[(start >= T0 + HOUR) & (start < T0 + 2 * HOUR)] = np.nan  # a window without predictions
    label = np.where(rng.random(n) < 0.7, rng.integers(0, n_classes, n).astype(float), np.nan)
    latency = rng.integers(0, 60, n).astype(float)
    odd = rng.random(n)
    latency[odd < 0.05] = np.nan
    latency[(odd > 0.05) & (odd < 0.06)] = np.inf
    zeros = (start < T0) & (odd > 0.1)  # the first window: mostly zeros of both signs, which compare
    latency[zeros] = np.where(rng.random(n) < 0.5, 0.0, -0.0)[zeros]  # equal but are other floats
    latency[start >= T0 + 2 * HOUR] = np.nan  # a window without latencies
    feats = rng.normal(size=(n, 2))
    proba = rng.random(n) if n_classes == 2 else rng.dirichlet(np.ones(n_classes), n)
    proba[rng.random(n) < 0.05] = np.nan
    return columns(start, pred, label, features=feats, latency=latency, classes=range(n_classes), proba=proba)


@pytest.mark.parametrize("seed, n_classes", [(21, 2), (22, 3), (23, 12)])
def test_the_per_window_pass_equals_the_vectorised_grouping(seed, n_classes, monkeypatch):
    cols = one_deployment(seed, 6000, n_classes)
    reference = ReferenceStats.fit(
        pd.DataFrame(np.random.default_rng(seed).normal(size=(500, 2)), columns=["f0", "f1"]), ["f0", "f1"]
    )
    assert window_groups.window_runs(cols, HOUR) is not None  # one CRN, in time order, many rows a window
    asked = [BoundRequest(m) for m in ("accuracy", "f1", "roc_auc", "log_loss", "precision")]
    runs = [r.to_dict() for r in compute_windows(cols, HOUR, reference=reference, bounds=asked, resamples=50)]
    monkeypatch.setattr(window_groups, "_RUN_MIN_ROWS", 10**9)
    assert window_groups.window_runs(cols, HOUR) is None
    grouped = [r.to_dict() for r in compute_windows(cols, HOUR, reference=reference, bounds=asked, resamples=50)]
    assert [r["start_ms"] for r in runs] == [T0 - HOUR, T0, T0 + 2 * HOUR]  # no window without predictions
    assert set(runs[0]["bounds"]) == {"accuracy@0.95", "f1@0.95", "roc_auc@0.95", "log_loss@0.95", "precision@0.95"}
    assert runs[0]["roc_auc"] is not None and runs[0]["log_loss"] is not None
    for r, g in zip(runs, grouped):  # the loss sums differ in rounding only
        assert r.pop("log_loss") == pytest.approx(g.pop("log_loss"), rel=1e-12)
    assert runs == grouped
    assert [math.copysign(1, r[q]) for r in runs for q in ("latency_p50_ms", "latency_p95_ms") if r[q] is not None] == [
        math.copysign(1, g[q]) for g in grouped for q in ("latency_p50_ms", "latency_p95_ms") if g[q] is not None
    ]


def test_other_rows_take_the_vectorised_grouping():
    cols = one_deployment(24, 3000, 2)
    assert window_groups.window_runs(cols, HOUR) is not None
    assert window_groups.window_runs(cols, 60_000) is None  # few rows a window
    unsorted = cols.take(np.arange(len(cols))[::-1])
    assert window_groups.window_runs(unsorted, HOUR) is None
    two = cols.take(np.arange(len(cols)))
    two.deployment_crn[-1] = B
    assert window_groups.window_runs(two, HOUR) is None
    assert [(r.start_ms, r.predictions) for r in compute_windows(unsorted, HOUR)] == [
        (r.start_ms, r.predictions) for r in compute_windows(cols, HOUR)
    ]
