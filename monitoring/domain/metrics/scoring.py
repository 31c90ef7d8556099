"""Vectorised per-group scoring kernels shared by the metric tables and their bootstrap bounds."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from monitoring.core.errors import DataError

#: Probabilities are clipped to [EPS, 1 - EPS] for log-loss (sklearn: float64's machine epsilon).
EPS = float(np.finfo(np.float64).eps)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, NaN where den == 0 (sklearn's ``zero_division=np.nan``)."""
    out = np.full(np.broadcast(num, den).shape, math.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def confusion_scores(cm: np.ndarray, positive: int | None) -> tuple[np.ndarray, ...]:
    """Accuracy, precision, recall, F1 of each confusion matrix in ``cm`` (..., c, c).

    Rows are true classes, columns predicted ones. ``positive`` is the positive class index of
    a binary model; None gives macro averages over the classes present (in the true or the
    predicted classes), NaN per-class terms left out, as sklearn does with ``zero_division=np.nan``.
    """
    total = cm.sum(axis=(-2, -1))
    diag = np.diagonal(cm, axis1=-2, axis2=-1)
    true_sum, pred_sum = cm.sum(axis=-1), cm.sum(axis=-2)
    accuracy = ratio(diag.sum(axis=-1), total)
    if positive is not None:
        tp, t, p = diag[..., positive], true_sum[..., positive], pred_sum[..., positive]
        return accuracy, ratio(tp, p), ratio(tp, t), ratio(2 * tp, t + p)
    present = (true_sum + pred_sum) > 0
    out = [accuracy]
    for per_class in (ratio(diag, pred_sum), ratio(diag, true_sum), ratio(2 * diag, true_sum + pred_sum)):
        used = present & ~np.isnan(per_class)
        out.append(ratio(np.where(used, per_class, 0.0).sum(axis=-1), used.sum(axis=-1)))
    return tuple(out)


def group_mean(group: np.ndarray, n_groups: int, values: np.ndarray) -> np.ndarray:
    """Mean of ``values`` per group; NaN for an empty group."""
    return ratio(np.bincount(group, weights=values, minlength=n_groups), np.bincount(group, minlength=n_groups))


def group_moments(group: np.ndarray, n_groups: int, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Count, mean and sample standard deviation (ddof=1) per group, in two passes (no cancellation).

    Values are first shifted by one value of their group, so a constant group has exactly zero
    spread (a sum of equal floats divided by their count need not give that float back).

    Returns:
        ``(n, mean, std)``; mean is NaN for an empty group, std NaN below two values.
    """
    n = np.bincount(group, minlength=n_groups)
    shift = np.zeros(n_groups)
    shift[group] = values  # any one value of each group
    shifted = values - shift[group]
    mean = ratio(np.bincount(group, weights=shifted, minlength=n_groups), n)
    dev = shifted - mean[group]
    var = ratio(np.bincount(group, weights=dev * dev, minlength=n_groups), n - 1.0)
    return n, mean + shift, np.sqrt(np.where(n > 1, var, math.nan))


def grouped_r2(group: np.ndarray, n_groups: int, y: np.ndarray, error: np.ndarray) -> np.ndarray:
    """1 - SSE / SST per group; NaN when the targets are constant or fewer than two."""
    n, _, std = group_moments(group, n_groups, y)
    sst = np.where(n > 1, std * std * (n - 1.0), 0.0)
    sse = np.bincount(group, weights=error * error, minlength=n_groups)
    r2 = 1.0 - ratio(sse, np.where(n > 1, sst, 0.0))
    return np.where(np.isnan(r2) | (sst <= 0), math.nan, r2)


def probability_matrix(proba: Any, n: int, n_classes: int, positive: int | None) -> np.ndarray:
    """Probabilities as a (n, n_classes) matrix: a binary model's positive-class vector expanded.

    Raises:
        DataError: the shape fits neither form.
    """
    arr = np.asarray(proba, dtype=np.float64)
    if arr.ndim == 1 and positive is not None and arr.shape == (n,):
        out = np.empty((n, 2))
        out[:, positive], out[:, 1 - positive] = arr, 1.0 - arr
        return out
    if arr.shape == (n, n_classes):
        return arr
    want = f"({n},) for the positive class or ({n}, {n_classes})" if positive is not None else f"({n}, {n_classes})"
    raise DataError(f"probabilities: expected shape {want}, got {arr.shape}")


def row_log_loss(y_true: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Each row's cross-entropy ``-ln p[true]``: rows scaled to sum to 1, then clipped to [EPS, 1 - EPS]."""
    if matrix.shape[1] > 2:
        matrix = matrix / matrix.sum(axis=1, keepdims=True)
    picked = matrix[np.arange(y_true.size), y_true] if y_true.size else np.empty(0)
    return -np.log(np.clip(picked, EPS, 1.0 - EPS))


def binary_auc(group: np.ndarray, n_groups: int, is_positive: np.ndarray, score: np.ndarray) -> np.ndarray:
    """ROC AUC per group by the Mann-Whitney rank sum (ties get their average rank).

    Returns:
        AUC per group; NaN where a group lacks positives or negatives.
    """
    n = group.size
    if n_groups == 1:
        return np.array([_one_auc(is_positive, score)])
    counts = np.bincount(group, minlength=n_groups)
    positives = np.bincount(group, weights=is_positive, minlength=n_groups)
    negatives = counts - positives
    if not n:
        return np.full(n_groups, math.nan)
    order = np.lexsort((score, group))
    g, s = group[order], score[order]
    new_run = np.ones(n, dtype=bool)
    new_run[1:] = (g[1:] != g[:-1]) | (s[1:] != s[:-1])
    run_start = np.flatnonzero(new_run)
    run_end = np.append(run_start[1:], n)
    group_start = np.cumsum(counts) - counts
    mid = (run_start + run_end - 1) / 2.0  # average 0-based position of each tie run
    rank = mid[np.cumsum(new_run) - 1] - group_start[g] + 1.0
    rank_sum = np.bincount(g, weights=rank * is_positive[order], minlength=n_groups)
    return ratio(rank_sum - positives * (positives + 1) / 2.0, positives * negatives)


def _one_auc(is_positive: np.ndarray, score: np.ndarray) -> float:
    """``binary_auc`` of one group (a window at a time is common), as the Mann-Whitney count: each
    positive scores 1 per negative below it and 1/2 per tie. The counts are whole or half numbers,
    so the result equals the rank-sum form exactly."""
    positive = is_positive != 0
    pos, neg = np.sort(score[positive]), np.sort(score[~positive])  # sorted queries: a cache-friendly search
    if not pos.size or not neg.size:
        return math.nan
    below = np.searchsorted(neg, pos, side="left")
    ties = np.searchsorted(neg, pos, side="right") - below
    wins = float(np.add.reduce(below)) + 0.5 * float(np.add.reduce(ties))
    return wins / (float(pos.size) * float(neg.size))


def grouped_auc(
    group: np.ndarray, n_groups: int, y_true: np.ndarray, matrix: np.ndarray, positive: int | None
) -> np.ndarray:
    """Binary AUC of the positive column, or the macro mean of one-vs-rest AUCs over the classes
    that have both outcomes in the group (NaN when none has)."""
    if positive is not None:
        return binary_auc(group, n_groups, (y_true == positive).astype(np.float64), matrix[:, positive])
    per_class = np.stack(
        [binary_auc(group, n_groups, (y_true == k).astype(np.float64), matrix[:, k]) for k in range(matrix.shape[1])]
    )
    defined = ~np.isnan(per_class)
    return ratio(np.where(defined, per_class, 0.0).sum(axis=0), defined.sum(axis=0).astype(np.float64))
