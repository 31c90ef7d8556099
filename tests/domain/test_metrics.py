"""Metric registry and per-group metric tables, checked against sklearn.metrics on the same rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from monitoring.config.metric_registry import METRICS, Direction, metric_spec, task_metrics
from monitoring.core.errors import DataError
from monitoring.domain.metrics.tables import classification_table, encode_classes, regression_table

TOL = 1e-9


def close(a, b):
    return a == pytest.approx(b, rel=TOL, abs=TOL, nan_ok=True)


def binary_rows(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    proba = np.clip(0.35 + 0.4 * (y - 0.35) + rng.normal(0, 0.2, n), 0, 1).round(2)  # rounding makes ties
    pred = (proba >= 0.5).astype(int)
    return y, pred, proba


def multiclass_rows(seed: int, n: int = 600, k: int = 4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k)) + 1.5 * np.eye(k)[y]
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba.argmax(axis=1), proba


def test_registry_knows_each_metric_task_direction_range_and_bound():
    assert task_metrics("classification") == ("accuracy", "precision", "recall", "f1")
    assert task_metrics("classification", probabilities=True)[-2:] == ("roc_auc", "log_loss")
    assert task_metrics("regression") == ("mae", "rmse", "mape", "r2", "bias")
    assert metric_spec("accuracy").direction is Direction.HIGHER and metric_spec("mae").direction is Direction.LOWER
    assert metric_spec("bias").direction is Direction.ZERO
    assert (metric_spec("r2").low, metric_spec("r2").high) == (-math.inf, 1.0)
    assert metric_spec("precision").bound_method(2) == "wilson"
    assert metric_spec("precision").bound_method(3) == "bootstrap"
    assert {m.bound for m in METRICS.values()} == {"wilson", "t", "bootstrap"}
    with pytest.raises(DataError, match="unknown metric 'auc' \\(known: accuracy, precision"):
        metric_spec("auc")
    with pytest.raises(DataError, match="unknown task 'ranking'"):
        task_metrics("ranking")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("positive", [0, 1])
def test_binary_metrics_match_sklearn(seed, positive):
    y, pred, p1 = binary_rows(seed)
    p_pos = p1 if positive == 1 else 1 - p1
    row = classification_table(y, pred, 2, positive=positive, proba=p_pos).row(0)
    assert close(row["accuracy"], skm.accuracy_score(y, pred))
    assert close(row["precision"], skm.precision_score(y, pred, pos_label=positive))
    assert close(row["recall"], skm.recall_score(y, pred, pos_label=positive))
    assert close(row["f1"], skm.f1_score(y, pred, pos_label=positive))
    assert close(row["roc_auc"], skm.roc_auc_score(y == positive, p_pos))
    assert close(row["log_loss"], skm.log_loss(y == positive, p_pos, labels=[False, True]))


@pytest.mark.parametrize("seed", [3, 4])
def test_multiclass_macro_metrics_match_sklearn(seed):
    y, pred, proba = multiclass_rows(seed)
    row = classification_table(y, pred, 4, proba=proba).row(0)
    assert close(row["accuracy"], skm.accuracy_score(y, pred))
    for name, fn in (("precision", skm.precision_score), ("recall", skm.recall_score), ("f1", skm.f1_score)):
        assert close(row[name], fn(y, pred, average="macro", zero_division=np.nan)), name
    assert close(row["roc_auc"], skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"))
    assert close(row["log_loss"], skm.log_loss(y, proba, labels=[0, 1, 2, 3]))


def test_grouped_table_equals_each_group_alone():
    y, pred, proba = multiclass_rows(5, n=900, k=3)
    group = np.random.default_rng(6).integers(0, 7, y.size)
    group[group == 4] = 5  # group 4 stays empty
    table = classification_table(y, pred, 3, proba=proba, group=group, n_groups=7)
    assert table.confusion.shape == (7, 3, 3)
    assert table.counts["rows"][4] == 0 and all(v is None for v in table.row(4).values())
    for g in (0, 1, 2, 3, 5, 6):
        mask = group == g
        alone = classification_table(y[mask], pred[mask], 3, proba=proba[mask]).row(0)
        assert table.row(g) == pytest.approx(alone, rel=1e-12)
        assert close(alone["f1"], skm.f1_score(y[mask], pred[mask], average="macro", zero_division=np.nan))


def test_unlabelled_and_unknown_rows_are_left_out():
    y, pred, p1 = binary_rows(7)
    y_with, pred_with = y.copy(), pred.copy()
    y_with[:40] = -1  # unlabelled
    pred_with[40:50] = -1  # a prediction outside the classes
    table = classification_table(y_with, pred_with, 2, proba=p1)
    kept = slice(50, None)
    assert table.counts["rows"][0] == y.size - 50
    assert close(table.row(0)["accuracy"], skm.accuracy_score(y[kept], pred[kept]))
    assert close(table.row(0)["roc_auc"], skm.roc_auc_score(y[kept], p1[kept]))


def test_nan_probabilities_leave_only_the_probability_metrics_short():
    y, pred, p1 = binary_rows(8)
    p = p1.copy()
    p[:25] = np.nan
    table = classification_table(y, pred, 2, proba=p)
    assert table.counts["rows"][0] == y.size and table.counts["proba_rows"][0] == y.size - 25
    assert close(table.row(0)["roc_auc"], skm.roc_auc_score(y[25:], p1[25:]))
    assert close(table.row(0)["accuracy"], skm.accuracy_score(y, pred))


def test_one_class_present_and_no_positives():
    y = np.zeros(20, dtype=int)
    pred = np.array([0] * 15 + [1] * 5)
    row = classification_table(y, pred, 2, proba=np.linspace(0, 1, 20)).row(0)
    assert row["accuracy"] == 0.75
    assert row["precision"] == 0.0  # 5 predicted positives, none right
    assert row["recall"] is None and row["roc_auc"] is None  # no positives: undefined, never 0
    assert close(row["recall"] or math.nan, skm.recall_score(y, pred, zero_division=np.nan))
    none_predicted = classification_table(y, np.zeros(20, dtype=int), 2).row(0)
    assert none_predicted["precision"] is None and none_predicted["f1"] is None
    assert none_predicted["accuracy"] == 1.0


def test_multiclass_macro_counts_only_classes_present_and_auc_only_classes_with_both_outcomes():
    y, pred, proba = multiclass_rows(9, n=300, k=4)
    keep = (y != 2) & (pred != 2)  # class 2 appears nowhere
    y, pred, proba = y[keep], pred[keep], proba[keep]
    row = classification_table(y, pred, 4, proba=proba).row(0)
    assert close(row["f1"], skm.f1_score(y, pred, average="macro", zero_division=np.nan))
    per_class = [skm.roc_auc_score(y == k, proba[:, k]) for k in (0, 1, 3)]
    assert close(row["roc_auc"], np.mean(per_class))


def test_without_probabilities_the_probability_metrics_are_skipped_with_a_reason():
    y, pred, _ = binary_rows(10)
    table = classification_table(y, pred, 2)
    assert set(table.values) == {"accuracy", "precision", "recall", "f1"}
    assert table.skipped == {"roc_auc": "no probabilities tracked", "log_loss": "no probabilities tracked"}


def test_empty_input_gives_undefined_metrics():
    table = classification_table([], [], 2, proba=np.empty(0))
    assert table.counts["rows"].tolist() == [0] and all(v is None for v in table.row(0).values())
    reg = regression_table([], [])
    assert reg.counts["rows"].tolist() == [0] and all(v is None for v in reg.row(0).values())


def test_classification_input_errors_are_named():
    with pytest.raises(DataError, match="need at least two classes"):
        classification_table([0], [0], 1)
    with pytest.raises(DataError, match="differ in length \\(2 vs 3\\)"):
        classification_table([0, 1], [0, 1, 1], 2)
    with pytest.raises(DataError, match="positive class index must be 0 or 1"):
        classification_table([0, 1], [0, 1], 2, positive=2)
    with pytest.raises(DataError, match="probabilities: expected shape \\(2,\\) for the positive class or \\(2, 2\\)"):
        classification_table([0, 1], [0, 1], 2, proba=[0.1, 0.2, 0.3])
    with pytest.raises(DataError, match="probabilities: expected shape \\(2, 3\\), got \\(2,\\)"):
        classification_table([0, 1], [0, 2], 3, proba=[0.1, 0.2])
    with pytest.raises(DataError, match="group: indexes must be in \\[0, 2\\)"):
        classification_table([0, 1], [0, 1], 2, group=np.array([0, 2]), n_groups=2)


def test_encode_classes_maps_strings_numbers_and_unknowns():
    assert encode_classes(["Yes", "No", "Maybe", None], ["No", "Yes"]).tolist() == [1, 0, -1, -1]
    assert encode_classes(np.array([1.0, 0.0, np.nan, 2.0]), [0, 1]).tolist() == [1, 0, -1, -1]
    assert encode_classes(np.array([3, 1, 2]), [1, 2, 3]).tolist() == [2, 0, 1]
    assert encode_classes(["1", 1], [1]).tolist() == [-1, 0]


def regression_rows(seed: int, n: int = 500):
    rng = np.random.default_rng(seed)
    y = rng.lognormal(3, 1, n)
    return y, y * rng.normal(1.05, 0.2, n) + rng.normal(0, 2, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_metrics_match_sklearn(seed):
    y, pred = regression_rows(seed)
    row = regression_table(y, pred).row(0)
    assert close(row["mae"], skm.mean_absolute_error(y, pred))
    assert close(row["rmse"], math.sqrt(skm.mean_squared_error(y, pred)))
    assert close(row["mape"], skm.mean_absolute_percentage_error(y, pred))
    assert close(row["r2"], skm.r2_score(y, pred))
    assert close(row["bias"], float(np.mean(pred - y)))


def test_mape_skips_and_counts_zero_targets():
    y, pred = regression_rows(3)
    y[[5, 17, 99]] = 0.0
    table = regression_table(y, pred)
    nonzero = y != 0
    assert table.counts["zero_target"].tolist() == [3] and table.counts["rows"].tolist() == [y.size]
    assert close(table.row(0)["mape"], skm.mean_absolute_percentage_error(y[nonzero], pred[nonzero]))
    assert close(table.row(0)["mae"], skm.mean_absolute_error(y, pred))  # the other metrics keep those rows
    assert regression_table([0.0, 0.0], [1.0, 2.0]).row(0)["mape"] is None


def test_r2_is_undefined_for_constant_targets_and_single_rows():
    pred = np.linspace(4, 5, 10)
    with np.errstate(divide="ignore"):
        assert not math.isfinite(skm.r2_score(np.full(10, 4.0), pred, force_finite=False))  # -inf: undefined
    assert regression_table(np.full(10, 4.0), pred).row(0)["r2"] is None
    # sklearn's mean of ten 4.2s is not 4.2, so it reports -2e29; the spread here is exactly zero
    row = regression_table(np.full(10, 4.2), pred).row(0)
    assert row["r2"] is None
    assert row["mae"] == pytest.approx(skm.mean_absolute_error(np.full(10, 4.2), pred))
    assert regression_table([3.0], [2.0]).row(0)["r2"] is None


def test_r2_of_large_targets_has_no_cancellation():
    y, pred = regression_rows(4)
    y, pred = y + 1e9, pred + 1e9  # prices: a sum of squares would lose the variance
    assert close(regression_table(y, pred).row(0)["r2"], skm.r2_score(y, pred))


def test_grouped_regression_leaves_non_finite_rows_out():
    y, pred = regression_rows(5, n=800)
    pred[::37] = np.nan
    group = np.arange(y.size) % 5
    table = regression_table(y, pred, group, 5)
    for g in range(5):
        mask = (group == g) & np.isfinite(pred)
        assert table.counts["rows"][g] == mask.sum()
        assert close(table.row(g)["rmse"], skm.root_mean_squared_error(y[mask], pred[mask]))
        assert close(table.row(g)["r2"], skm.r2_score(y[mask], pred[mask]))
