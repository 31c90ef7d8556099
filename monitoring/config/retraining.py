"""The retraining choices of ``retraining:``: which rows a challenger learns from, the refit, and the gate."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from monitoring.core.durations import Duration

#: The retraining data strategies (``retraining.strategy.kind``).
StrategyKind = Literal["sliding", "expanding", "recency_weighted"]
#: The challenger gates (``retraining.gate.kind``).
GateKind = Literal["margin", "bootstrap"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StrategyConfig(_Strict):
    """Which labelled rows a challenger is trained on (``docs/configuration.md``, "Retraining data")."""

    kind: StrategyKind = "sliding"
    """``sliding``: the labelled rows of the last ``retraining.lookback`` (plus ``data.training`` when
    ``data.retraining.include_training``); ``expanding``: every labelled row since the first
    deployment plus ``data.training``; ``recency_weighted``: the expanding rows, each weighted by
    ``0.5 ** (age / half_life)`` and passed to the trainer as ``sample_weight``."""
    half_life: Duration = timedelta(hours=1)
    """Age at which a row counts half (``recency_weighted`` only)."""


class GateConfig(_Strict):
    """How a challenger must beat the champion on the same held-out rows."""

    kind: GateKind = "margin"
    """``margin``: the point estimate must beat the champion by ``retraining.min_improvement``;
    ``bootstrap``: the paired bootstrap interval of the metric difference must lie wholly on the
    better side (at ``confidence``)."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    """Two-sided confidence level of the bootstrap interval."""
    resamples: int = Field(default=1000, ge=100, le=100_000)
    """Bootstrap resamples of the held-out rows."""
    retry_after_windows: int = Field(default=2, ge=0, le=1000)
    """After a rejected challenger, labelled windows that must close before another retraining is
    decided (0: retry at the next breach)."""


class ContractConfig(_Strict):
    """The data contract retraining rows must keep (``monitoring/domain/data/contract.py``)."""

    path: str | None = None
    """A contract file under the project root (``cml-monitor contract`` writes one to edit); unset:
    the contract is learned from ``data.training`` on each run."""
    enforce: bool = True
    """Check the labelled rows before any fit: a violation blocks the retraining (exit 10)."""
