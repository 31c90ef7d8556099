"""Champion vs challenger on one metric, respecting its direction: is the challenger better by enough?"""

from __future__ import annotations

import math
from dataclasses import dataclass

from monitoring.config.metric_registry import Direction, metric_spec


@dataclass(frozen=True)
class Judgement:
    """The outcome of a challenge.

    Attributes:
        metric: the metric compared.
        champion: the champion's value (None when undefined on the held-out rows).
        challenger: the challenger's value (None when undefined).
        gain: how much better the challenger is: an absolute difference for a quality metric, a
            fraction of the champion's value for an error metric (negative: worse); None when
            either value is undefined.
        better: whether the gain reaches the required improvement.
        reason: one line for the verdict.
        interval: the statistical gate's interval of the gain, in the metric's units (None: margin gate).
        confidence: its confidence level.
    """

    metric: str
    champion: float | None
    challenger: float | None
    gain: float | None
    better: bool
    reason: str
    interval: tuple[float, float] | None = None
    confidence: float | None = None


def _gain(direction: Direction, champion: float, challenger: float) -> float:
    if direction is Direction.HIGHER:
        return challenger - champion
    champ, chall = (abs(champion), abs(challenger)) if direction is Direction.ZERO else (champion, challenger)
    if champ == 0:
        return 0.0 if chall == 0 else -math.inf
    return (champ - chall) / champ


def judge(metric: str, champion: float | None, challenger: float | None, min_improvement: float) -> Judgement:
    """Whether the challenger beats the champion on ``metric`` by at least ``min_improvement``.

    A quality metric (higher is better: accuracy, F1, R²) must rise by ``min_improvement``
    (absolute); an error metric (lower is better: MAE, RMSE, log-loss; for bias its size) must
    fall by ``min_improvement`` as a fraction of the champion's value.

    Args:
        metric: a registry name (``monitoring/domain/metrics.py``).
        champion: the champion's value on the held-out rows.
        challenger: the challenger's value on the same rows.
        min_improvement: the required gain (0 means "at least as good").

    Returns:
        The judgement; an undefined value never makes the challenger better.

    Raises:
        DataError: unknown metric.
    """
    spec = metric_spec(metric)
    if challenger is None or champion is None:
        which = "challenger" if challenger is None else "champion"
        return Judgement(
            metric, champion, challenger, None, False, f"the {which}'s {metric} is undefined on the held-out rows"
        )
    gain = _gain(spec.direction, champion, challenger)
    better = gain >= min_improvement
    unit = "" if spec.direction is Direction.HIGHER else " of the champion's value"
    verb = "higher" if spec.direction is Direction.HIGHER else "lower"
    reason = (
        f"{metric} {challenger:.4g} vs champion {champion:.4g}: "
        + (f"better by {gain:.4g}" if gain > 0 else "not better")
        + f" (needs {min_improvement:g}{unit}, {verb} is better)"
    )
    return Judgement(metric, champion, challenger, gain, better, reason)
