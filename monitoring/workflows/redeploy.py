"""redeploy: act once on the latest decision: retrain, challenge the champion, release, or do nothing."""

from __future__ import annotations

import logging

from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError, MonitoringError
from monitoring.core.logs import KV
from monitoring.domain.decisions.decision import Action
from monitoring.domain.windows.results import window_start
from monitoring.workflows.alerts import announce_outcome
from monitoring.workflows.champion import champion_scores
from monitoring.workflows.context import Context, Outcome
from monitoring.workflows.contract_check import enforce_contract
from monitoring.workflows.gatekeeping import gate, gate_fields, rejected_next_step
from monitoring.workflows.release import release
from monitoring.workflows.retrain import (
    candidate_from_rows,
    headline,
    recent_frame,
    refit_candidate,
    sample_request,
    save_candidate,
    training_rows,
)
from monitoring.workflows.training_runs import log_candidate, mark_saved

log = logging.getLogger(__name__)


def _no_action(summary: str, **fields) -> Outcome:
    return Outcome("no_action", summary, "none", fields)


def redeploy(ctx: Context) -> Outcome:
    """Consume the latest decision exactly once.

    Returns:
        ``no_action`` for a healthy/consumed decision, ``rejected`` when the challenger is not
        better, ``deployed`` with the new version otherwise.

    Raises:
        DataError: too few labelled rows to retrain (the champion keeps serving).
        RedeployError: build/deploy/verify failed; the previous deployment serves.
    """
    now = ctx.platform.clock.now_ms()
    model, _ = ctx.live_recorded()
    model_name = model.name
    decision = ctx.store.latest_decision(model_name)
    if decision is None:
        return _no_action("no decision recorded yet", model=model_name)
    fields = dict(model=model_name, decision=decision.id, decision_action=decision.action.value)
    if decision.action is not Action.REDEPLOY:
        return _no_action(f"latest decision {decision.id} is {decision.action.value!r}: nothing to redeploy", **fields)
    if decision.consumed_by or not ctx.store.claim_decision(decision.id, ctx.platform.run_id, now):
        again = ctx.store.decision(decision.id)
        if again.outcome is None:
            return _no_action(
                f"decision {decision.id} was claimed by run {again.consumed_by}, which has not "
                "finished (or was killed); nothing is done twice: the next evaluation decides "
                "again",
                **fields,
            )
        return _no_action(
            f"decision {decision.id} was already acted on by run {again.consumed_by} (outcome {again.outcome})",
            **fields,
        )
    log.info("acting on decision %s", KV(decision=decision.id, run=ctx.platform.run_id))
    try:
        outcome = announce_outcome(ctx, fields, lambda: _retrain_and_release(ctx, decision.id, now, fields))
    except MonitoringError as exc:
        ctx.store.finish_decision(decision.id, "failed", str(exc), ctx.platform.clock.now_ms())
        raise
    ctx.store.finish_decision(decision.id, outcome.status, outcome.summary, ctx.platform.clock.now_ms())
    return outcome


def _retrain_and_release(ctx: Context, decision_id: str, now: int, fields: dict) -> Outcome:
    cfg = ctx.cfg
    model = ctx.require_model()
    current = ctx.store.current_deployment(model.name)
    start = window_start(now, cfg.windows.length_ms) - to_ms(cfg.retraining.lookback)
    frame = recent_frame(ctx, start, now)
    if len(frame) < cfg.retraining.min_rows:
        raise DataError(
            f"only {len(frame)} labelled rows since the lookback start; retraining needs "
            f"retraining.min_rows={cfg.retraining.min_rows}"
        )
    enforce_contract(ctx, frame)
    candidate = candidate_from_rows(ctx, training_rows(ctx, frame, now))
    metric, _ = headline(ctx, candidate.holdout_metrics)
    scores = champion_scores(ctx, current, candidate)
    verdict = gate(ctx, metric, scores)
    fields.update(
        rows=len(frame),
        training_rows=len(candidate.train),
        held_out=scores.rows,
        metric=metric,
        champion=current.version,
        champion_judged_by=scores.how,
        champion_value=_rounded(verdict.champion),
        challenger_value=_rounded(verdict.challenger),
    )
    fields.update(gate_fields(cfg.retraining.gate.kind, verdict))
    log.info("challenger vs champion on held-out recent data %s", KV(**fields))
    run = log_candidate(ctx, "challenger", candidate, decision_id, fields)
    if not verdict.better:
        return Outcome(
            "rejected",
            f"challenger not better than champion {current.version}: {verdict.reason}; champion kept",
            rejected_next_step(cfg.retraining.gate.retry_after_windows),
            fields,
        )
    if cfg.retraining.refit:
        candidate = refit_candidate(ctx, candidate)
    fields.update(strategy=cfg.retraining.strategy.kind, fitted_rows=len(candidate.train), refit=candidate.refitted)
    version, rel = save_candidate(ctx, candidate, current.version, decision_id)
    registered = mark_saved(ctx, run, version, rel, decision_id)
    fields["version"] = version
    live = release(ctx, model, rel, version, decision_id, sample_request(ctx, candidate.holdout), registered)
    fields["deployment"] = live.id
    return Outcome(
        "deployed",
        f"deployed {version} ({verdict.reason}, champion {current.version}, on {scores.rows} held-out recent rows)",
        "none",
        fields,
    )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
