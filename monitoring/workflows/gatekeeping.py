"""The gate a challenger passes before release: the margin (point estimate) or the paired bootstrap."""

from __future__ import annotations

from typing import Any

from monitoring.domain.training.challenge import Judgement, judge
from monitoring.domain.training.gate import bootstrap_gate
from monitoring.workflows.champion import Scores
from monitoring.workflows.context import Context

#: Salt of the gate's random generator (``Context.rng``): the same evidence gives the same interval.
GATE_SALT = 22


def gate(ctx: Context, metric: str, scores: Scores) -> Judgement:
    """Judge the challenger against the champion by ``retraining.gate``.

    The bootstrap gate needs both models' predictions of the same rows; without them (never the
    case for scores from ``champion_scores``) the margin gate judges.
    """
    retraining = ctx.cfg.retraining
    paired = (scores.y_true, scores.champion_predictions, scores.challenger_predictions)
    if retraining.gate.kind == "bootstrap" and all(p is not None for p in paired):
        y, champion, challenger = paired
        return bootstrap_gate(
            metric,
            y,
            champion,
            challenger,
            ctx.cfg.model,
            confidence=retraining.gate.confidence,
            resamples=retraining.gate.resamples,
            rng=ctx.rng(GATE_SALT),
        )
    return judge(metric, scores.champion.get(metric), scores.challenger.get(metric), retraining.min_improvement)


def gate_fields(kind: str, verdict: Judgement) -> dict[str, Any]:
    """VERDICT fields of the gate: its kind, the gain, and the bootstrap interval when there is one."""
    fields: dict[str, Any] = {"gate": kind, "gain": None if verdict.gain is None else round(verdict.gain, 4)}
    if verdict.interval is not None:
        fields.update(
            gain_low=round(verdict.interval[0], 4),
            gain_high=round(verdict.interval[1], 4),
            confidence=verdict.confidence,
        )
    return fields


def rejected_next_step(retry_after_windows: int) -> str:
    """What on-call does after a rejected challenger (docs/runbook.md, redeploy `rejected`)."""
    wait = (
        f"the next retraining waits for {retry_after_windows} new labelled windows"
        if retry_after_windows
        else "the next breach retrains again"
    )
    return (
        "the champion keeps serving and no model change was made; "
        f"{wait}; check the labels and features of recent windows (`cml-monitor report`) and, if the "
        "breach is real, retrain by hand or widen retraining.strategy"
    )
