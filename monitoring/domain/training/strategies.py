"""Retraining data strategies: which labelled rows a challenger is fitted on, held out on, and their weights.

Every strategy holds out the same rows: the newest ``holdout_fraction`` of the labelled rows of the
lookback (the rows a champion and a challenger are compared on). They differ in what comes before:

- ``sliding``: the older labelled rows of the lookback (and ``data.training`` when asked for);
- ``expanding``: ``data.training`` and every labelled row since the first deployment;
- ``recency_weighted``: the expanding rows, each weighted ``0.5 ** (age / half_life)`` (the weights
  have mean 1; ``data.training`` rows, which carry no traffic time, are as old as the oldest
  labelled row), given to the trainer as ``sample_weight``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config.retraining import StrategyConfig
from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError

#: The strategies that read every labelled row since the first deployment, not only the lookback.
WHOLE_HISTORY = ("expanding", "recency_weighted")


@dataclass(frozen=True)
class TrainingRows:
    """The rows of one training, in time order.

    Attributes:
        strategy: the strategy that selected them.
        train: the rows fitted before the gate.
        holdout: the newest rows, held out to judge the challenger (and the champion).
        weights: one weight per row of ``train`` then ``holdout`` (None: unweighted).
    """

    strategy: str
    train: pd.DataFrame
    holdout: pd.DataFrame
    weights: np.ndarray | None = None

    @property
    def train_weights(self) -> np.ndarray | None:
        return None if self.weights is None else self.weights[: len(self.train)]

    def everything(self) -> tuple[pd.DataFrame, np.ndarray | None]:
        """All selected rows (held-out ones included) and their weights: what the refit sees."""
        return pd.concat([self.train, self.holdout], ignore_index=True), self.weights

    def describe(self, refitted: bool) -> dict[str, Any]:
        """What the fitted model saw, for its metadata and the VERDICT."""
        return {
            "strategy": self.strategy,
            "fitted_rows": len(self.train) + (len(self.holdout) if refitted else 0),
            "held_out_rows": len(self.holdout),
            "held_out_included": refitted,
            "weighted": self.weights is not None,
        }


def reads_whole_history(strategy: StrategyConfig) -> bool:
    """Whether the strategy reads every labelled row, not only those of the lookback."""
    return strategy.kind in WHOLE_HISTORY


def select_rows(
    strategy: StrategyConfig,
    labelled: pd.DataFrame,
    held_out: int,
    *,
    initial: pd.DataFrame | None = None,
    now_ms: int,
    times: np.ndarray | None = None,
) -> TrainingRows:
    """Split labelled rows by the strategy.

    Args:
        strategy: ``retraining.strategy``.
        labelled: the labelled rows the strategy reads, in time order (the lookback for
            ``sliding``, the whole history otherwise).
        held_out: how many of the newest rows to hold out.
        initial: ``data.training`` rows to train on first (the expanding strategies always pass
            them; sliding only with ``data.retraining.include_training``).
        now_ms: the current time, from which ages are counted.
        times: when each labelled row was predicted (epoch ms; NaN: unknown), for the weights.

    Returns:
        The rows, with weights for ``recency_weighted``.

    Raises:
        DataError: no held-out rows, or nothing to train on.
    """
    cut = len(labelled) - held_out
    if held_out <= 0 or (cut <= 0 and (initial is None or initial.empty)):
        raise DataError(f"{len(labelled)} labelled rows cannot be split into training and held-out rows")
    train, holdout = labelled.iloc[: max(cut, 0)], labelled.iloc[max(cut, 0) :]
    if initial is not None and len(initial):
        train = pd.concat([initial, train], ignore_index=True)
    train, holdout = train.reset_index(drop=True), holdout.reset_index(drop=True)
    weights = None
    if strategy.kind == "recency_weighted":
        untimed = np.full(0 if initial is None else len(initial), np.nan)  # data set times are not traffic times
        known = np.full(len(labelled), np.nan) if times is None else np.asarray(times, dtype=np.float64)
        weights = recency_weights(np.concatenate([untimed, known]), to_ms(strategy.half_life), now_ms)
    return TrainingRows(strategy.kind, train, holdout, weights)


def recency_weights(times: np.ndarray, half_life_ms: int, now_ms: int) -> np.ndarray:
    """``0.5 ** (age / half_life)`` per row time (epoch ms), scaled to mean 1; a row without a time
    (NaN) is as old as the oldest row that has one.

    Raises:
        DataError: a half-life that is not positive.
    """
    if half_life_ms <= 0:
        raise DataError(f"retraining.strategy.half_life must be positive, got {half_life_ms} ms")
    if not len(times):
        return np.ones(0)
    known = np.isfinite(times)
    oldest = times[known].min() if known.any() else float(now_ms)
    ages = np.maximum(float(now_ms) - np.where(known, times, oldest), 0.0)
    weights = np.power(0.5, ages / float(half_life_ms))
    return weights / weights.mean()
