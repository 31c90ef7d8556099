"""The statistical gate: a paired bootstrap of the metric difference between challenger and champion.

Both models are judged on the same held-out rows, so the rows are resampled together: each
resample draws row indices with replacement and computes the metric of both models on those
rows; the difference (positive: the challenger is better, in the metric's own units) gives a
two-sided percentile interval at the configured confidence. The challenger passes only when the
whole interval lies on the better side: a gain that noise could explain is "not better".
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from monitoring.config.metric_registry import Direction, metric_spec
from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import DataError
from monitoring.domain.training.challenge import Judgement
from monitoring.domain.training.predictions import Predictions, score_predictions

#: Resamples computed at once by the vectorised metrics (rows x this many indices in memory).
CHUNK = 64
#: A statistic of many resamples at once: row indices (resamples x rows) -> one value per resample.
Statistic = Callable[[np.ndarray], np.ndarray]


def _mean_of(per_row: np.ndarray, root: bool = False) -> Statistic:
    def statistic(indices: np.ndarray) -> np.ndarray:
        means = per_row[indices].mean(axis=1)
        return np.sqrt(means) if root else means

    return statistic


def _statistic(metric: str, y: np.ndarray, predictions: Predictions, spec: ModelConfig) -> Statistic:
    """The metric over resampled rows: vectorised for the metrics that are means of per-row values."""
    if metric == "accuracy":
        return _mean_of((predictions.values == y).astype(np.float64))
    if not spec.is_classifier and metric in ("mae", "rmse", "bias"):
        error = predictions.values.astype(np.float64) - y.astype(np.float64)
        per_row = {"mae": np.abs(error), "rmse": error**2, "bias": error}[metric]
        return _mean_of(per_row, root=metric == "rmse")

    def statistic(indices: np.ndarray) -> np.ndarray:
        values = []
        for row in indices:
            picked = Predictions(predictions.values[row], None if predictions.proba is None else predictions.proba[row])
            value = score_predictions(y[row], picked, spec).get(metric)
            values.append(np.nan if value is None else value)
        return np.asarray(values, dtype=np.float64)

    return statistic


def _better_by(direction: Direction, champion: np.ndarray, challenger: np.ndarray) -> np.ndarray:
    """How much better the challenger is, in the metric's units (positive: better)."""
    if direction is Direction.HIGHER:
        return challenger - champion
    if direction is Direction.ZERO:
        return np.abs(champion) - np.abs(challenger)
    return champion - challenger


def bootstrap_gate(
    metric: str,
    y_true: np.ndarray,
    champion: Predictions,
    challenger: Predictions,
    spec: ModelConfig,
    *,
    confidence: float,
    resamples: int,
    rng: np.random.Generator,
) -> Judgement:
    """Whether the challenger is better than the champion on the same rows, beyond resampling noise.

    Args:
        metric: a registry name.
        y_true: the held-out labels (class values or numbers).
        champion: the champion's predictions of those rows.
        challenger: the challenger's predictions of the same rows.
        spec: the model spec.
        confidence: two-sided level of the interval (e.g. 0.95).
        resamples: bootstrap resamples.
        rng: the injected random generator.

    Returns:
        The judgement, with the interval of the difference; ``better`` when its lower end is above 0.

    Raises:
        DataError: predictions of other lengths than the labels, or no rows.
    """
    y = np.asarray(y_true, dtype=object if spec.is_classifier else np.float64)
    n = len(y)
    if n == 0 or len(champion.values) != n or len(challenger.values) != n:
        raise DataError(
            f"the gate needs both models' predictions of the same rows: {n} labels, "
            f"{len(champion.values)} champion and {len(challenger.values)} challenger predictions"
        )
    direction = metric_spec(metric).direction
    everything = np.arange(n)[None, :]
    champ_stat, chall_stat = _statistic(metric, y, champion, spec), _statistic(metric, y, challenger, spec)
    champ_value, chall_value = float(champ_stat(everything)[0]), float(chall_stat(everything)[0])
    differences = []
    for start in range(0, resamples, CHUNK):
        indices = rng.integers(0, n, size=(min(CHUNK, resamples - start), n))
        differences.append(_better_by(direction, champ_stat(indices), chall_stat(indices)))
    gains = np.concatenate(differences)
    gains = gains[np.isfinite(gains)]
    point = float(_better_by(direction, np.array([champ_value]), np.array([chall_value]))[0])
    if not len(gains) or not np.isfinite(point):
        return Judgement(metric, None, None, None, False, f"{metric} is undefined on the held-out rows")
    tail = (1 - confidence) / 2 * 100
    low, high = (float(v) for v in np.percentile(gains, [tail, 100 - tail]))
    better = low > 0
    level = f"{confidence:.0%}"
    reason = f"{metric} {chall_value:.4g} vs champion {champ_value:.4g} on {n} held-out rows: " + (
        f"better by {point:.4g} ({level} interval {low:.4g} to {high:.4g})"
        if better
        else f"not better beyond noise (gain {point:.4g}, {level} interval {low:.4g} to {high:.4g} includes 0 "
        "or lies below it)"
    )
    return Judgement(metric, champ_value, chall_value, point, better, reason, (low, high), confidence)
