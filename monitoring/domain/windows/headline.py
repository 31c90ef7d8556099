"""The metric a window is summed up by, and the confidence bounds the configured policies need."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from monitoring.config.metric_registry import headline_metric
from monitoring.config.pipeline import BoundPolicy, WilsonPolicy
from monitoring.domain.metrics.bounds import DEFAULT_CONFIDENCE
from monitoring.domain.windows.bounds import BoundRequest


def policy_metric(policies: Iterable[Any]) -> str | None:
    """The metric the first policy that names one judges (None: no policy names one).

    A window is summed up by it: ``headline_metric(task, policy_metric(policies))``.

    Args:
        policies: ``ThresholdConfig.policies``.
    """
    return next((p.metric for p in policies if getattr(p, "metric", None)), None)


def headline_confidence(policies: Iterable[Any], metric: str) -> float:
    """The confidence of the first bound or Wilson policy on ``metric`` (the default level when none)."""
    return next(
        (p.confidence for p in policies if isinstance(p, (BoundPolicy, WilsonPolicy)) and p.metric == metric),
        DEFAULT_CONFIDENCE,
    )


def bound_requests(policies: Sequence[Any], task: str) -> list[BoundRequest]:
    """The bounds ``compute_windows`` must compute: each bound policy's, and the headline metric's
    (drawn in the report) at its policy's confidence.

    Args:
        policies: ``ThresholdConfig.policies``.
        task: ``model.task``.
    """
    headline = headline_metric(task, policy_metric(policies))
    wanted = [BoundRequest(p.metric, p.confidence) for p in policies if isinstance(p, BoundPolicy)]
    wanted.append(BoundRequest(headline, headline_confidence(policies, headline)))
    return list(dict.fromkeys(wanted))
