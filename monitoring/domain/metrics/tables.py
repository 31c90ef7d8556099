"""The task's metrics per group (window) of rows, vectorised: ``classification_table`` and ``regression_table``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitoring.core.errors import DataError
from monitoring.domain.metrics import scoring


@dataclass
class MetricTable:
    """Metrics of ``n_groups`` groups (windows) of rows.

    Attributes:
        values: metric name -> float64 array (n_groups,); NaN where the metric is undefined on
            that group (no rows, zero denominator, one class present, constant target, ...).
        counts: row counts per group: ``rows`` (rows scored: labelled, with a usable
            prediction); classification adds ``proba_rows`` (of those, with finite
            probabilities); regression adds ``zero_target`` (rows left out of MAPE: target 0).
        skipped: metric name -> why it is absent from ``values`` for every group.
        confusion: classification only: counts (n_groups, n_classes, n_classes), rows = true
            class index, columns = predicted class index.
    """

    values: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]
    skipped: dict[str, str] = field(default_factory=dict)
    confusion: np.ndarray | None = None

    def row(self, g: int) -> dict[str, float | None]:
        """Group ``g``'s metrics as plain floats, None where undefined (skipped metrics left out)."""
        return {name: (None if math.isnan(v[g]) else float(v[g])) for name, v in self.values.items()}


def encode_classes(values: Any, classes: Sequence[Any]) -> np.ndarray:
    """Index of each value in ``classes``, or -1 when it is missing or not one of them.

    Any hashable classes (ints, strings); equal values match (``1`` and ``1.0`` are one class,
    ``"1"`` is another).

    Args:
        values: labels or predictions (array-like).
        classes: the model's classes, in the order of its probability columns.

    Returns:
        intp array of indexes into ``classes``.
    """
    import pandas as pd  # pandas' hash table maps any hashable in C; imported only here

    arr = values if isinstance(values, np.ndarray) else np.array(list(values), dtype=object)
    if arr.dtype.kind == "f" and all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        cls = np.asarray(classes, dtype=np.float64)
        if np.unique(cls).size == cls.size:
            return pd.Index(cls).get_indexer(arr).astype(np.intp)
    return pd.Index(list(classes), dtype=object).get_indexer(pd.Index(arr.ravel(), dtype=object)).astype(np.intp)


def _groups(group: np.ndarray | None, n_groups: int, n: int) -> np.ndarray:
    if group is None:
        return np.zeros(n, dtype=np.intp)
    group = np.asarray(group, dtype=np.intp)
    if group.shape != (n,):
        raise DataError(f"group: expected one group index per row ({n}), got shape {group.shape}")
    if n and (group.min() < 0 or group.max() >= n_groups):
        raise DataError(f"group: indexes must be in [0, {n_groups}), got [{group.min()}, {group.max()}]")
    return group


def _positive_index(n_classes: int, positive: int | None) -> int | None:
    if n_classes < 2:
        raise DataError(f"need at least two classes, got {n_classes}")
    if n_classes > 2:
        return None
    positive = 1 if positive is None else int(positive)
    if positive not in (0, 1):
        raise DataError(f"positive class index must be 0 or 1 for a binary model, got {positive}")
    return positive


@dataclass
class ClassificationRows:
    """The scored rows of a classification table: labelled, with a prediction among the classes.

    Attributes:
        group: group index of each row.
        y_true: true class index of each row.
        y_pred: predicted class index of each row.
        matrix: probabilities (rows, n_classes), or None when not tracked.
        positive: the positive class index (binary), or None (macro).
        n_groups: number of groups.
        confusion: counts (n_groups, n_classes, n_classes).
    """

    group: np.ndarray
    y_true: np.ndarray
    y_pred: np.ndarray
    matrix: np.ndarray | None
    positive: int | None
    n_groups: int
    confusion: np.ndarray

    def with_proba(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(group, y_true, matrix)`` of the rows whose probabilities are all finite."""
        has = np.isfinite(self.matrix).all(axis=1)
        return self.group[has], self.y_true[has], self.matrix[has]


def classification_rows(
    y_true: Any,
    y_pred: Any,
    n_classes: int,
    positive: int | None = None,
    proba: Any = None,
    group: np.ndarray | None = None,
    n_groups: int = 1,
) -> ClassificationRows:
    """Check and filter the inputs of ``classification_table`` (same arguments) and count them.

    Raises:
        DataError: as ``classification_table``.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.intp).ravel(), np.asarray(y_pred, dtype=np.intp).ravel()
    if y_true.shape != y_pred.shape:
        raise DataError(f"y_true and y_pred differ in length ({y_true.size} vs {y_pred.size})")
    pos = _positive_index(n_classes, positive)
    group = _groups(group, n_groups, y_true.size)
    matrix = None if proba is None else scoring.probability_matrix(proba, y_true.size, n_classes, pos)
    ok = (y_true >= 0) & (y_true < n_classes) & (y_pred >= 0) & (y_pred < n_classes)
    g, t, p = group[ok], y_true[ok], y_pred[ok]
    cm = np.bincount((g * n_classes + t) * n_classes + p, minlength=n_groups * n_classes * n_classes)
    cm = cm.reshape(n_groups, n_classes, n_classes)
    return ClassificationRows(g, t, p, None if matrix is None else matrix[ok], pos, n_groups, cm)


def classification_table(
    y_true: Any,
    y_pred: Any,
    n_classes: int,
    positive: int | None = None,
    proba: Any = None,
    group: np.ndarray | None = None,
    n_groups: int = 1,
) -> MetricTable:
    """Accuracy, precision, recall, F1 and, with probabilities, ROC AUC and log-loss per group.

    Follows ``sklearn.metrics``: binary metrics report the ``positive`` class; more classes
    report macro averages over the classes present in the group (in its labels or
    predictions). A zero denominator gives NaN (``zero_division=np.nan``), never 0, so an
    undefined value cannot pass for a breach. ROC AUC needs both outcomes in the group (one
    vs rest: macro over the classes that have both); log-loss clips probabilities to
    ``[eps, 1 - eps]`` (float64 eps) and, for a matrix, first scales each row to sum to 1.

    Args:
        y_true: true class indexes (``encode_classes``); -1 for unlabelled rows.
        y_pred: predicted class indexes; -1 for predictions outside the classes.
        n_classes: number of classes (>= 2).
        positive: binary only: index of the positive class (default 1).
        proba: optional probabilities: binary, the positive class's (n,); any task, a
            matrix (n, n_classes) in class index order. NaN rows are left out of AUC and log-loss.
        group: group (window) index of each row in ``[0, n_groups)``; None: one group.
        n_groups: number of groups.

    Returns:
        The table; rows with ``y_true < 0`` or ``y_pred < 0`` are left out of every metric.

    Raises:
        DataError: fewer than two classes, arrays of different lengths, a bad positive index or
            a probability array of the wrong shape.
    """
    rows = classification_rows(y_true, y_pred, n_classes, positive, proba, group, n_groups)
    accuracy, precision, recall, f1 = scoring.confusion_scores(rows.confusion, rows.positive)
    values = {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}
    counts = {"rows": rows.confusion.sum(axis=(1, 2))}
    skipped = {}
    if rows.matrix is None:
        skipped = dict.fromkeys(("roc_auc", "log_loss"), "no probabilities tracked")
    else:
        g, t, matrix = rows.with_proba()
        counts["proba_rows"] = np.bincount(g, minlength=n_groups)
        values["roc_auc"] = scoring.grouped_auc(g, n_groups, t, matrix, rows.positive)
        values["log_loss"] = scoring.group_mean(g, n_groups, scoring.row_log_loss(t, matrix))
    return MetricTable(values, counts, skipped, rows.confusion)


def regression_rows(
    y_true: Any, y_pred: Any, group: np.ndarray | None = None, n_groups: int = 1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The scored rows of ``regression_table`` (same arguments): ``(group, target, prediction - target)``
    of the rows where both values are finite.

    Raises:
        DataError: as ``regression_table``.
    """
    y_true, y_pred = np.asarray(y_true, dtype=np.float64).ravel(), np.asarray(y_pred, dtype=np.float64).ravel()
    if y_true.shape != y_pred.shape:
        raise DataError(f"y_true and y_pred differ in length ({y_true.size} vs {y_pred.size})")
    group = _groups(group, n_groups, y_true.size)
    ok = np.isfinite(y_true) & np.isfinite(y_pred)
    return group[ok], y_true[ok], y_pred[ok] - y_true[ok]


def regression_table(y_true: Any, y_pred: Any, group: np.ndarray | None = None, n_groups: int = 1) -> MetricTable:
    """MAE, RMSE, MAPE, R² and bias (mean of prediction - target) per group.

    Rows where either value is not finite are left out. MAPE is a fraction (as sklearn's) over
    the rows whose target is not 0; those are counted in ``counts["zero_target"]``. R² is NaN
    when the group's targets are all equal or it has fewer than two rows (sklearn's
    ``force_finite=False``).

    Args:
        y_true: targets.
        y_pred: predictions.
        group: group (window) index of each row in ``[0, n_groups)``; None: one group.
        n_groups: number of groups.

    Returns:
        The table.

    Raises:
        DataError: arrays of different lengths or bad group indexes.
    """
    g, y, error = regression_rows(y_true, y_pred, group, n_groups)
    rows = np.bincount(g, minlength=n_groups)
    nonzero = y != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ape = np.abs(error[nonzero]) / np.abs(y[nonzero])
    mse = scoring.group_mean(g, n_groups, error * error)
    values = {
        "mae": scoring.group_mean(g, n_groups, np.abs(error)),
        "rmse": np.sqrt(mse),
        "mape": scoring.group_mean(g[nonzero], n_groups, ape),
        "r2": scoring.grouped_r2(g, n_groups, y, error),
        "bias": scoring.group_mean(g, n_groups, error),
    }
    counts = {"rows": rows, "zero_target": np.bincount(g[~nonzero], minlength=n_groups)}
    return MetricTable(values, counts)
