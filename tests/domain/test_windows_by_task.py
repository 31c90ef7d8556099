"""Windows follow the spec: regression metrics, text classes, categorical drift and the bounds policies need."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from monitoring.domain.metrics import bounds as metric_bounds
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.windows.bounds import BoundRequest
from monitoring.domain.windows.compute import compute_windows
from tests.domain.support import T0, model_spec, prediction

HOUR = 3_600_000
HOUSING = model_spec(features=["sqft", "age"], label="price", task="regression")
CHURN = model_spec(
    features=[{"name": "tenure"}, {"name": "contract", "kind": "categorical"}],
    label={"name": "Churn", "classes": ["No", "Yes"], "mapping": {"yes": "Yes", "no": "No"}},
)


def housing_records(seed: int, n: int = 900, hours: int = 3) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        price = float(rng.normal(500_000, 120_000))
        pred = price + float(rng.normal(0, 40_000 * (1 + i // (n // hours))))  # the error grows each hour
        label = price if rng.random() < 0.8 else None
        start = T0 + int(i * hours * HOUR / n)
        out.append(prediction(f"h{i}", start, pred, label=label, features={"sqft": 1500.0, "age": 20.0}))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_regression_windows_equal_sklearn(seed):
    recs = housing_records(seed)
    cols = records_to_columns(recs, HOUSING)
    results = compute_windows(cols, HOUR)
    assert len(results) == 3 and results[0].mae < results[1].mae < results[2].mae
    for r in results:
        inside = (cols.start_ms >= r.start_ms) & (cols.start_ms < r.end_ms)
        has = inside & np.isfinite(cols.label)
        y, p = cols.label[has], cols.prediction[has]
        assert (r.predictions, r.labelled) == (int(inside.sum()), int(has.sum()))
        assert r.mae == pytest.approx(skm.mean_absolute_error(y, p), rel=1e-12)
        assert r.rmse == pytest.approx(math.sqrt(skm.mean_squared_error(y, p)), rel=1e-12)
        assert r.mape == pytest.approx(skm.mean_absolute_percentage_error(y, p), rel=1e-12)
        assert r.r2 == pytest.approx(skm.r2_score(y, p), rel=1e-9)
        assert r.bias == pytest.approx(float(np.mean(p - y)), rel=1e-9, abs=1e-6)
        assert r.accuracy is None and r.confusion == {} and r.unknown_class == 0
        assert set(r.scores()) == {"mae", "rmse", "mape", "r2", "bias"}


def test_regression_bounds_are_the_metric_bounds_of_each_window():
    cols = records_to_columns(housing_records(3), HOUSING)
    asked = [BoundRequest("mae", 0.9), BoundRequest("r2"), BoundRequest("accuracy")]  # accuracy: not this task
    results = compute_windows(cols, HOUR, bounds=asked, seed=7, resamples=60)
    for r in results:
        assert set(r.bounds) == {"mae@0.9", "r2@0.95"}
        inside = (cols.start_ms >= r.start_ms) & (cols.start_ms < r.end_ms)
        want = metric_bounds.regression_bounds("mae", cols.label[inside], cols.prediction[inside], confidence=0.9)
        assert r.bound("mae", 0.9) == pytest.approx((want.low[0], want.high[0]), rel=1e-12)
        assert r.bounds["mae@0.9"]["method"] == "t" and r.bounds["r2@0.95"]["method"] == "bootstrap"
        low, high = r.bound("r2", 0.95)
        assert low < r.r2 < high
    again = compute_windows(cols, HOUR, bounds=asked, seed=7, resamples=60)
    assert [r.bounds for r in again] == [r.bounds for r in results]  # seeded per window: reproducible


@pytest.mark.parametrize("crns", [1, 2], ids=["one-slice-a-window", "grouped-at-once"])
def test_a_regressors_windows_count_the_rows_mape_leaves_out(crns):
    recs = housing_records(6, n=600, hours=2)
    for i, rec in enumerate(recs):
        if i % 7 == 0 and "final_label" in rec["metrics"]:
            rec["metrics"]["final_label"] = 0.0  # a true value of 0: no percentage error exists
        rec["modelDeploymentCrn"] += f"-{i % crns}"  # two deployments: every window is grouped at once
    cols = records_to_columns(recs, HOUSING)
    results = compute_windows(cols, HOUR)
    assert len(results) == 2 * crns
    for r in results:
        inside = (cols.start_ms >= r.start_ms) & (cols.start_ms < r.end_ms) & np.isfinite(cols.label)
        inside &= cols.deployment_crn == r.deployment_crn
        zero = inside & (cols.label == 0)
        assert r.zero_targets == int(zero.sum()) > 0 and r.labelled == int(inside.sum())
        kept = inside & ~zero
        assert r.mape == pytest.approx(skm.mean_absolute_percentage_error(cols.label[kept], cols.prediction[kept]))
        assert r.rows_note("mape") == (
            f" ({r.zero_targets} of {r.labelled} labelled rows have target 0: left out of MAPE)"
        )
        assert r.rows_note("mae") == ""
    plain = compute_windows(records_to_columns(housing_records(6, n=300, hours=1), HOUSING), HOUR)
    assert [r.zero_targets for r in plain] == [0] and plain[0].rows_note("mape") == ""
    classes = compute_windows(records_to_columns(churn_records(), CHURN), HOUR)
    assert {r.zero_targets for r in classes} == {None}  # a classifier has no MAPE


def churn_records(n: int = 400) -> list[dict]:
    rng = np.random.default_rng(5)
    out = []
    for i in range(n):
        late = i >= n // 2  # the second hour: another contract mix, and a category never seen in training
        contract = rng.choice(["two-year", "month-to-month", "student"] if late else ["one-year", "two-year"])
        truth = "yes" if rng.random() < 0.3 else "no"
        pred = truth.capitalize() if rng.random() < 0.8 else ("No" if truth == "yes" else "Yes")
        recs = prediction(f"c{i}", T0 + i * (2 * HOUR // n), pred, label=truth, features={"tenure": 5.0 + i % 30})
        recs["metrics"]["input_features"]["contract"] = str(contract)
        recs["metrics"]["probability"] = 0.8 if pred == "Yes" else 0.2
        out.append(recs)
    return out


def test_text_classes_through_the_mapping_give_sklearn_metrics_and_categorical_drift():
    recs = churn_records()
    cols = records_to_columns(recs, CHURN)
    training = pd.DataFrame({"tenure": np.arange(400) % 30 + 5.0, "contract": ["one-year", "two-year"] * 200})
    reference = ReferenceStats.fit(training, ["tenure", "contract"], kinds={"contract": "categorical"})
    first, second = compute_windows(cols, HOUR, reference, min_drift_rows=30)
    for r in (first, second):
        inside = (cols.start_ms >= r.start_ms) & (cols.start_ms < r.end_ms)
        y = np.asarray(cols.classes, dtype=object)[cols.label[inside].astype(int)]
        p = np.asarray(cols.classes, dtype=object)[cols.prediction[inside].astype(int)]
        assert r.accuracy == pytest.approx(skm.accuracy_score(y, p))
        assert r.f1 == pytest.approx(skm.f1_score(y, p, pos_label="Yes"))
        assert r.roc_auc == pytest.approx(skm.roc_auc_score(y == "Yes", cols.proba[inside]))
        assert set(r.confusion) == {"tp", "fp", "tn", "fn"} and sum(r.confusion.values()) == r.labelled
    assert set(first.drift["contract"]) == {"psi", "js"} and set(first.drift["tenure"]) == {"psi", "ks"}
    assert first.drift["contract"]["psi"] < 0.1 < 1.0 < second.drift["contract"]["psi"]
    assert second.drift["contract"]["js"] > 0.3
    expected = reference.drift("contract", cols.categories["contract"][cols.start_ms >= second.start_ms])
    assert second.drift["contract"] == pytest.approx(expected)


def test_multiclass_text_classes_report_their_confusion_by_name():
    spec = model_spec(features=["x"], label={"name": "y", "classes": ["low", "mid", "high"]})
    recs = [
        prediction(
            f"m{i}",
            T0 + i,
            ["low", "mid", "high"][i % 3],
            label=["low", "mid", "high"][(i // 2) % 3],
            features={"x": 1.0},
        )
        for i in range(60)
    ]
    [r] = compute_windows(records_to_columns(recs, spec), HOUR)
    assert r.confusion["labels"] == ["low", "mid", "high"]
    assert np.sum(r.confusion["matrix"]) == 60 and r.roc_auc is None
