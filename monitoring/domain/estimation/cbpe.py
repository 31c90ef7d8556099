"""Confidence-based performance estimation: a window's expected confusion matrix from calibrated probabilities.

A binary classifier's row predicted positive with calibrated probability ``p`` of being positive is
a true positive with probability ``p`` and a false positive with ``1 - p``; summed over a window's
rows, the expected confusion matrix, and from it accuracy, precision, recall and F1. ROC AUC is the
expected share of (positive, negative) pairs the score orders right. Each interval is the spread
the window's labels would have if the calibrated probabilities are right (the labels as independent
Bernoulli draws, normal approximation with the delta method): it says how far the realized metric
may land from the estimate by chance, not whether the calibration still holds. It holds under
covariate shift (inputs move, P(label | inputs) does not); under concept drift, P(label | inputs)
changes and nothing in the inputs shows it: the estimate stays where it was (docs/estimation.md).
A multi-class classifier gets accuracy only: the calibrated probability that its predicted class is right.
"""

from __future__ import annotations

import math

import numpy as np

#: z of a two-sided 95% normal interval.
Z95 = 1.959963984540054


def _interval(value: float, se: float, low: float = 0.0, high: float = 1.0) -> dict[str, float | None]:
    if not math.isfinite(value):
        return {"value": None, "low": None, "high": None}
    half = Z95 * se if math.isfinite(se) else math.inf
    return {"value": value, "low": max(low, value - half), "high": min(high, value + half)}


def expected_auc(score: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Expected ROC AUC of ``score`` when row i is positive with probability ``p[i]``, and its standard error.

    Pairs are weighted by ``p_i (1 - p_j)``; a tie counts one half (as the realized AUC does).
    The standard error is Hanley and McNeil's, with the expected numbers of positives and negatives.
    """
    q = 1.0 - p
    pos, neg = float(p.sum()), float(q.sum())
    if pos <= 0 or neg <= 0:
        return math.nan, math.nan
    values, inverse = np.unique(score, return_inverse=True)
    p_at = np.bincount(inverse, weights=p, minlength=values.size)
    q_at = np.bincount(inverse, weights=q, minlength=values.size)
    below = np.cumsum(q_at) - q_at
    auc = float(np.dot(p_at, below + 0.5 * q_at) / (pos * neg))
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    var = (auc * (1 - auc) + (pos - 1) * (q1 - auc * auc) + (neg - 1) * (q2 - auc * auc)) / (pos * neg)
    return auc, math.sqrt(max(var, 0.0))


def estimate_binary(score: np.ndarray, p: np.ndarray, predicted_positive: np.ndarray) -> dict[str, dict]:
    """Expected accuracy, precision, recall, F1 and ROC AUC of one window's rows, each with its 95% interval.

    Args:
        score: the model's probability of the positive class (ranks the rows for ROC AUC).
        p: the calibrated probability that each row is positive.
        predicted_positive: whether each row was predicted positive.
    """
    n = p.size
    if n == 0:
        return {}
    pp = predicted_positive
    var = p * (1.0 - p)
    tp, fn = float(p[pp].sum()), float(p[~pp].sum())
    v_tp, v_fn = float(var[pp].sum()), float(var[~pp].sum())
    n_pos_pred = float(pp.sum())
    tn = n - n_pos_pred - fn
    out = {"accuracy": _interval((tp + tn) / n, math.sqrt(v_tp + v_fn) / n)}
    # precision: TP over a fixed count of predicted positives
    out["precision"] = _interval(
        tp / n_pos_pred if n_pos_pred else math.nan, math.sqrt(v_tp) / n_pos_pred if n_pos_pred else math.nan
    )
    actual = tp + fn  # recall = A / (A + B), A = TP and B = FN independent sums
    if actual > 0:
        se = math.sqrt(fn * fn * v_tp + tp * tp * v_fn) / actual**2
        out["recall"] = _interval(tp / actual, se)
    else:
        out["recall"] = _interval(math.nan, math.nan)
    d = n_pos_pred + actual  # F1 = 2A / (npos + A + B)
    if d > 0:
        se = math.sqrt((2 * (n_pos_pred + fn)) ** 2 * v_tp + (2 * tp) ** 2 * v_fn) / d**2
        out["f1"] = _interval(2 * tp / d, se)
    else:
        out["f1"] = _interval(math.nan, math.nan)
    auc, se = expected_auc(score, p)
    out["roc_auc"] = _interval(auc, se)
    return out


def estimate_top_label(p_right: np.ndarray) -> dict[str, dict]:
    """A multi-class window's expected accuracy: the mean calibrated probability that the predicted class is right."""
    n = p_right.size
    if n == 0:
        return {}
    return {"accuracy": _interval(float(p_right.mean()), math.sqrt(float((p_right * (1 - p_right)).sum())) / n)}
