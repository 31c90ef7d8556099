"""A rejected challenger is not retried on the same evidence: the next retraining waits for new labelled windows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cmlbase.clock import iso_ms
from monitoring.domain.decisions.decision import Action, Decision

#: The redeploy outcome of a challenger the gate did not let through.
REJECTED = "rejected"


def last_acted_redeploy(decisions: Sequence[Decision]) -> Decision | None:
    """The newest redeploy decision a redeploy run finished (``decisions`` newest first)."""
    return next((d for d in decisions if d.action is Action.REDEPLOY and d.outcome is not None), None)


def retry_blocker(decisions: Sequence[Decision], windows: Sequence[Any], needed: int) -> str | None:
    """Why a redeploy must wait: the last challenger was rejected and too few labelled windows came since.

    Args:
        decisions: the model's decisions, newest first.
        windows: the live deployment's windows (``WindowMetrics`` or compatible: ``start_ms``, ``labelled``).
        needed: ``retraining.gate.retry_after_windows``.

    Returns:
        The reason, or None when a retraining may go ahead.
    """
    last = last_acted_redeploy(decisions)
    if needed <= 0 or last is None or last.outcome != REJECTED or last.window_end_ms is None:
        return None
    fresh = sum(1 for w in windows if w.start_ms >= last.window_end_ms and (w.labelled or 0) > 0)
    if fresh >= needed:
        return None
    return (
        f"the challenger of decision {last.id} was rejected on the windows up to {iso_ms(last.window_end_ms)}; "
        f"retraining waits for {needed} new labelled windows (retraining.gate.retry_after_windows), "
        f"{fresh} so far"
    )
