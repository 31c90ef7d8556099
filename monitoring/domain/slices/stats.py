"""A slice's sufficient statistics (counts and sums: they add up, so nothing but them is kept) and its
metrics with their 95% bounds, computed from them."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

#: z of a two-sided 95% interval.
Z95 = 1.959963984540054
#: What a classifier's slice keeps (binary: the positive class's counts too) and a regressor's.
CLASS_STATS = ("rows", "labelled", "correct", "actual_pos", "tp", "pred_pos")
REGRESSION_STATS = ("rows", "labelled", "abs_sum", "abs_sq")
#: The metrics a slice gets, by task, each with the counts it is a share of (None: a mean).
SLICE_METRICS = {
    "accuracy": ("correct", "labelled"),
    "precision": ("tp", "pred_pos"),
    "recall": ("tp", "actual_pos"),
    "mae": None,
}


def classifier_stats(
    index: np.ndarray, k: int, y_pred: np.ndarray, y_true: np.ndarray, positive: int | None
) -> list[dict]:
    """Per slice (``index`` in ``0..k-1``, -1: none), a classifier's counts (class indexes, -1: none)."""
    inside = index >= 0
    predicted = inside & (y_pred >= 0)
    scored = predicted & (y_true >= 0)
    right = scored & (y_pred == y_true)
    counts = {
        "rows": np.bincount(index[predicted], minlength=k),
        "labelled": np.bincount(index[scored], minlength=k),
        "correct": np.bincount(index[right], minlength=k),
    }
    if positive is not None:
        counts["actual_pos"] = np.bincount(index[scored & (y_true == positive)], minlength=k)
        counts["tp"] = np.bincount(index[right & (y_true == positive)], minlength=k)
        counts["pred_pos"] = np.bincount(index[scored & (y_pred == positive)], minlength=k)
    return [{name: int(c[s]) for name, c in counts.items()} for s in range(k)]


def regressor_stats(index: np.ndarray, k: int, pred: np.ndarray, label: np.ndarray) -> list[dict]:
    """Per slice, a regressor's rows, labelled rows and the sums of ``|error|`` and ``error²``."""
    inside = index >= 0
    predicted = inside & np.isfinite(pred)
    scored = predicted & np.isfinite(label)
    error = np.abs(label[scored] - pred[scored])
    at = index[scored]
    rows, labelled = np.bincount(index[predicted], minlength=k), np.bincount(at, minlength=k)
    abs_sum, abs_sq = np.bincount(at, error, minlength=k), np.bincount(at, error * error, minlength=k)
    return [
        {"rows": int(rows[s]), "labelled": int(labelled[s]), "abs_sum": float(abs_sum[s]), "abs_sq": float(abs_sq[s])}
        for s in range(k)
    ]


def wilson(k: float, n: float) -> tuple[float, float]:
    """Wilson's 95% interval of a share ``k / n``."""
    p = k / n
    centre = (p + Z95 * Z95 / (2 * n)) / (1 + Z95 * Z95 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 * Z95 / (4 * n * n)) / (1 + Z95 * Z95 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def mean_and_variance(stats: Mapping[str, float]) -> tuple[float, float]:
    """A regressor slice's MAE and the variance of its ``|error|``."""
    n = stats["labelled"]
    mean = stats["abs_sum"] / n
    return mean, max(stats["abs_sq"] / n - mean * mean, 0.0) * n / max(n - 1, 1)


def metric_of(stats: Mapping[str, float], metric: str) -> tuple[float, float, float] | None:
    """``(value, low, high)`` of one metric of a slice; None when the slice does not define it."""
    counts = SLICE_METRICS.get(metric, ())
    if counts is None:
        if "abs_sum" not in stats or stats.get("labelled", 0) < 2:
            return None
        mean, var = mean_and_variance(stats)
        half = Z95 * math.sqrt(var / stats["labelled"])
        return mean, max(0.0, mean - half), mean + half
    if not counts or counts[0] not in stats or not stats.get(counts[1]):
        return None
    k, n = stats[counts[0]], stats[counts[1]]
    return (k / n, *wilson(k, n))


def slice_metrics(stats: Mapping[str, float]) -> dict[str, dict[str, float]]:
    """Every metric the slice defines, ``{metric: {"value", "low", "high"}}``."""
    out = {}
    for metric in SLICE_METRICS:
        found = metric_of(stats, metric)
        if found is not None:
            out[metric] = dict(zip(("value", "low", "high"), found))
    return out
