"""Confidence bounds of each metric per group: Wilson for proportions, t for means, a seeded bootstrap otherwise."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from monitoring.config.metric_registry import BOOTSTRAP, T_MEAN, WILSON, Direction, MetricSpec, metric_spec
from monitoring.core.errors import DataError
from monitoring.domain.metrics import scoring
from monitoring.domain.metrics.tables import classification_rows, regression_rows

DEFAULT_CONFIDENCE = 0.95
#: Bootstrap resamples per group.
DEFAULT_RESAMPLES = 400
#: Rows drawn per resample, at most: a larger group is resampled m-out-of-n and the spread
#: scaled by sqrt(m / n), so one window of a million rows costs what one of 10,000 does.
BOOTSTRAP_MAX_ROWS = 10_000


@dataclass
class Bounds:
    """A two-sided interval per group at ``confidence`` (each side one-sided at (1 + confidence) / 2).

    Attributes:
        metric: the metric.
        method: ``wilson``, ``t`` or ``bootstrap``.
        confidence: two-sided level.
        low: lower bound per group; the metric's lowest value where nothing is known.
        high: upper bound per group; the metric's highest value where nothing is known.
    """

    metric: str
    method: str
    confidence: float
    low: np.ndarray
    high: np.ndarray

    def breach(self) -> np.ndarray:
        """Per group, the side a policy compares with its limit (``breach_bound``)."""
        return breach_bound(self.metric, self.low, self.high)


def breach_bound(metric: str, low: npt.ArrayLike, high: npt.ArrayLike) -> np.ndarray:
    """The side of an interval that a breach must clear, so that a few labels never prove one.

    A floor (higher is better) is breached only when even the upper bound is below it; a
    ceiling (lower is better) only when even the lower bound is above it; a band around zero
    (bias) compares the smallest ``|value|`` in the interval (0 when it holds 0) with its limit.

    Args:
        metric: a registry name.
        low: lower bounds.
        high: upper bounds.

    Returns:
        The values to compare, per group.
    """
    lows: np.ndarray = np.asarray(low, dtype=np.float64)
    highs: np.ndarray = np.asarray(high, dtype=np.float64)
    direction = metric_spec(metric).direction
    if direction is Direction.HIGHER:
        return highs
    if direction is Direction.LOWER:
        return lows
    return np.where(lows > 0, lows, np.where(highs < 0, -highs, 0.0))


def _z(confidence: float) -> float:
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be between 0 and 1, got {confidence}")
    return NormalDist().inv_cdf((1 + confidence) / 2)


def wilson_bounds(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of proportions, vectorised; (0, 1) where ``n`` is 0.

    Args:
        successes: successes per group.
        n: trials per group.
        confidence: two-sided level in (0, 1).

    Returns:
        ``(low, high)`` arrays.
    """
    z = _z(confidence)
    k, n = np.asarray(successes, dtype=np.float64), np.asarray(n, dtype=np.float64)
    safe = np.maximum(n, 1.0)
    p = k / safe
    z2n = z * z / safe
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * np.sqrt(p * (1 - p) / safe + z2n / (4 * safe)) / (1 + z2n)
    empty = n <= 0
    return np.where(empty, 0.0, np.maximum(0.0, centre - half)), np.where(empty, 1.0, np.minimum(1.0, centre + half))


def t_mean_bounds(
    group: np.ndarray, n_groups: int, values: np.ndarray, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Student t interval of the mean of ``values`` per group: mean ± t * s / sqrt(n).

    Returns:
        ``(low, high)``; ``(-inf, inf)`` below two values.
    """
    from scipy.stats import t as student_t  # scipy loads only when a bound is asked for

    _z(confidence)
    n, mean, std = scoring.group_moments(group, n_groups, values)
    known = n > 1
    quantile = student_t.ppf((1 + confidence) / 2, np.where(known, n - 1, 1))
    half = quantile * std / np.sqrt(np.maximum(n, 1))
    return np.where(known, mean - half, -math.inf), np.where(known, mean + half, math.inf)


def _percentile_bounds(estimate: float, resampled: np.ndarray, scale: float, confidence: float) -> tuple[float, float]:
    """Percentile interval, deviations scaled by ``scale`` (sqrt(m / n) for m-out-of-n resamples)."""
    finite = resampled[np.isfinite(resampled)]
    if math.isnan(estimate) or finite.size < resampled.size / 2:
        return -math.inf, math.inf
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(finite, [tail, 1 - tail])
    return estimate + scale * (lo - estimate), estimate + scale * (hi - estimate)


def _confusion_bootstrap(
    cm: np.ndarray,
    positive: int | None,
    which: int,
    estimate: np.ndarray,
    rng: np.random.Generator,
    resamples: int,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows resampled with replacement, drawn at once as multinomial confusion matrices (exact)."""
    n_groups, c, _ = cm.shape
    low, high = np.full(n_groups, -math.inf), np.full(n_groups, math.inf)
    n = cm.sum(axis=(1, 2))
    used = np.flatnonzero(n > 0)
    if used.size:
        pvals = cm[used].reshape(used.size, c * c) / n[used, None]
        draws = rng.multinomial(n[used], pvals, size=(resamples, used.size)).reshape(resamples, used.size, c, c)
        scores = scoring.confusion_scores(draws, positive)[which]
        for col, g in enumerate(used.tolist()):
            low[g], high[g] = _percentile_bounds(float(estimate[g]), scores[:, col], 1.0, confidence)
    return low, high


#: Drawn rows scored in one call of the statistic (bounds the temporaries).
_BATCH_ROWS = 1 << 21


def _row_bootstrap(
    group: np.ndarray,
    n_groups: int,
    columns: tuple[np.ndarray, ...],
    statistic: Callable[..., np.ndarray],
    estimate: np.ndarray,
    rng: np.random.Generator,
    resamples: int,
    confidence: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Rows resampled per group (at most ``BOOTSTRAP_MAX_ROWS`` a draw). ``statistic(rid, k, *columns)``
    scores ``k`` resamples at once, ``rid`` giving each drawn row its resample; small groups'
    resamples are scored together in batches of about ``_BATCH_ROWS`` rows."""
    low, high = np.full(n_groups, -math.inf), np.full(n_groups, math.inf)
    order = np.argsort(group, kind="stable")
    edges = np.searchsorted(group[order], np.arange(n_groups + 1))
    batch: list[tuple[int, np.ndarray, float]] = []

    def flush() -> None:
        picks = np.concatenate([p for _, p, _ in batch])
        rid = np.concatenate(
            [
                np.repeat(np.arange(b * resamples, (b + 1) * resamples), p.size // resamples)
                for b, (_, p, _) in enumerate(batch)
            ]
        )
        scores = statistic(rid, len(batch) * resamples, *(col[picks] for col in columns)).reshape(len(batch), -1)
        for b, (g, _, scale) in enumerate(batch):
            low[g], high[g] = _percentile_bounds(float(estimate[g]), scores[b], scale, confidence)
        batch.clear()

    drawn = 0
    for g in range(n_groups):
        rows = order[edges[g] : edges[g + 1]]
        n = rows.size
        if n < 2:
            continue
        m = min(n, BOOTSTRAP_MAX_ROWS)
        batch.append((g, rows[rng.integers(0, n, size=resamples * m)], math.sqrt(m / n)))
        drawn += resamples * m
        if drawn >= _BATCH_ROWS:
            flush()
            drawn = 0
    if batch:
        flush()
    return low, high


def _spec(metric: str, task: str) -> MetricSpec:
    spec = metric_spec(metric)
    if spec.task != task:
        raise DataError(f"metric {metric!r} is a {spec.task} metric, not a {task} one")
    return spec


def _needs_rng(rng: np.random.Generator | None, metric: str) -> np.random.Generator:
    if rng is None:
        raise DataError(f"metric {metric!r} is bounded by a bootstrap: pass a seeded numpy Generator as rng")
    return rng


def _finish(spec: MetricSpec, method: str, confidence: float, low: npt.ArrayLike, high: npt.ArrayLike) -> Bounds:
    low = np.clip(np.asarray(low, dtype=np.float64), spec.low, spec.high)
    high = np.clip(np.asarray(high, dtype=np.float64), spec.low, spec.high)
    return Bounds(spec.name, method, confidence, low, high)


def confusion_wilson(metric: str, cm: np.ndarray, positive: int | None, confidence: float) -> Bounds:
    """Wilson interval of accuracy, or of a binary model's precision or recall, from confusion matrices.

    Args:
        metric: ``accuracy``, ``precision`` or ``recall``.
        cm: counts (n_groups, c, c), rows true and columns predicted classes.
        positive: the positive class index (binary precision and recall).
        confidence: two-sided level.

    Returns:
        The bounds per group ((0, 1) where the denominator is 0).

    Raises:
        DataError: another metric, or precision/recall without a positive class (more than two classes).
    """
    spec = _spec(metric, "classification")
    diag = np.diagonal(cm, axis1=1, axis2=2)
    if metric == "accuracy":
        low, high = wilson_bounds(diag.sum(axis=1), cm.sum(axis=(1, 2)), confidence)
    elif metric in ("precision", "recall") and positive is not None:
        denominator = cm.sum(axis=1 if metric == "precision" else 2)[:, positive]
        low, high = wilson_bounds(diag[:, positive], denominator, confidence)
    else:
        raise DataError(f"metric {metric!r} has no Wilson interval here (accuracy; binary precision or recall)")
    return _finish(spec, WILSON, confidence, low, high)


def classification_bounds(
    metric: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    n_classes: int,
    positive: int | None = None,
    proba: npt.ArrayLike | None = None,
    group: np.ndarray | None = None,
    n_groups: int = 1,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    rng: np.random.Generator | None = None,
    resamples: int = DEFAULT_RESAMPLES,
) -> Bounds:
    """Interval of a classification metric per group, on the rows ``classification_table`` scores.

    Wilson for accuracy and binary precision/recall (successes over their denominator); a t
    interval on the per-row losses for log-loss; a bootstrap for F1, macro precision/recall
    (multinomial draws of the confusion matrix) and ROC AUC (rows resampled).

    Args:
        metric: a classification metric of the registry.
        y_true, y_pred, n_classes, positive, proba, group, n_groups: as ``classification_table``.
        confidence: two-sided level.
        rng: seeded generator, required for the bootstrap metrics.
        resamples: bootstrap resamples per group.

    Returns:
        The bounds.

    Raises:
        DataError: a regression or unknown metric, a probability metric without probabilities,
            no rng for a bootstrap metric, or the input errors of ``classification_table``.
    """
    spec = _spec(metric, "classification")
    _z(confidence)
    rows = classification_rows(y_true, y_pred, n_classes, positive, proba, group, n_groups)
    method = spec.bound_method(n_classes)
    cm = rows.confusion
    if spec.needs_probabilities and rows.matrix is None:
        raise DataError(f"metric {metric!r} needs the model's probabilities, and none were given")
    if method == WILSON:
        return confusion_wilson(metric, cm, rows.positive, confidence)
    if method == T_MEAN:
        g, t, matrix = rows.with_proba()
        low, high = t_mean_bounds(g, n_groups, scoring.row_log_loss(t, matrix), confidence)
    elif metric == "roc_auc":
        g, t, matrix = rows.with_proba()
        estimate = scoring.grouped_auc(g, n_groups, t, matrix, rows.positive)

        def auc(rid: np.ndarray, k: int, t_: np.ndarray, m_: np.ndarray) -> np.ndarray:
            return scoring.grouped_auc(rid, k, t_, m_, rows.positive)

        low, high = _row_bootstrap(
            g, n_groups, (t, matrix), auc, estimate, _needs_rng(rng, metric), resamples, confidence
        )
    else:
        which = ("accuracy", "precision", "recall", "f1").index(metric)
        estimate = scoring.confusion_scores(cm, rows.positive)[which]
        low, high = _confusion_bootstrap(
            cm, rows.positive, which, estimate, _needs_rng(rng, metric), resamples, confidence
        )
    return _finish(spec, method, confidence, low, high)


def regression_bounds(
    metric: str,
    y_true: npt.ArrayLike,
    y_pred: npt.ArrayLike,
    group: np.ndarray | None = None,
    n_groups: int = 1,
    *,
    confidence: float = DEFAULT_CONFIDENCE,
    rng: np.random.Generator | None = None,
    resamples: int = DEFAULT_RESAMPLES,
) -> Bounds:
    """Interval of a regression metric per group, on the rows ``regression_table`` scores.

    A t interval on the mean of the per-row terms for MAE (|error|), MAPE (|error| / |target|,
    target 0 left out), bias (error) and RMSE (the square root of the MSE's bounds); a row
    bootstrap for R².

    Args:
        metric: a regression metric of the registry.
        y_true, y_pred, group, n_groups: as ``regression_table``.
        confidence: two-sided level.
        rng: seeded generator, required for R².
        resamples: bootstrap resamples per group.

    Returns:
        The bounds.

    Raises:
        DataError: a classification or unknown metric, no rng for R², or the input errors of
            ``regression_table``.
    """
    spec = _spec(metric, "regression")
    _z(confidence)
    g, y, error = regression_rows(y_true, y_pred, group, n_groups)
    if spec.bound == BOOTSTRAP:
        estimate = scoring.grouped_r2(g, n_groups, y, error)

        def r2(rid: np.ndarray, k: int, y_: np.ndarray, e_: np.ndarray) -> np.ndarray:
            return scoring.grouped_r2(rid, k, y_, e_)

        low, high = _row_bootstrap(
            g, n_groups, (y, error), r2, estimate, _needs_rng(rng, metric), resamples, confidence
        )
        return _finish(spec, BOOTSTRAP, confidence, low, high)
    if metric == "mape":
        nonzero = y != 0
        low, high = t_mean_bounds(g[nonzero], n_groups, np.abs(error[nonzero]) / np.abs(y[nonzero]), confidence)
    elif metric == "rmse":
        low, high = t_mean_bounds(g, n_groups, error * error, confidence)
        low, high = np.sqrt(np.maximum(low, 0.0)), np.sqrt(np.maximum(high, 0.0))
    else:
        low, high = t_mean_bounds(g, n_groups, np.abs(error) if metric == "mae" else error, confidence)
    return _finish(spec, T_MEAN, confidence, low, high)
