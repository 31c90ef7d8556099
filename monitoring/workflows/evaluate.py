"""evaluate_thresholds: apply the threshold policies to the live deployment's windows; persist a decision."""

from __future__ import annotations

import logging
from dataclasses import replace

from cmlbase.clock import iso_ms
from monitoring.config.metric_registry import headline_metric
from monitoring.config.pipeline import REDEPLOY_SCRIPT
from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError
from monitoring.core.logs import KV
from monitoring.domain.decisions.decision import Action, Decision, decide
from monitoring.domain.decisions.policy_results import PolicyResult
from monitoring.domain.decisions.retry import retry_blocker
from monitoring.domain.training.artifacts import load_artifact
from monitoring.domain.windows.headline import policy_metric
from monitoring.workflows.alerts import announce_decision
from monitoring.workflows.context import Context, Outcome

log = logging.getLogger(__name__)

DAY_MS = 24 * 3600 * 1000


#: What on-call should do for each decision.
NEXT_STEPS = {
    Action.NONE: "none",
    Action.INSUFFICIENT_DATA: "none; wait for labels (check the ground-truth feed if this persists)",
    Action.WARN: "review feature drift in `cml-monitor report`; no redeploy was triggered",
    Action.REDEPLOY: "none; the redeploy job retrains and redeploys (watch its VERDICT)",
    Action.SUPPRESSED: "investigate: the model is below policy but a redeploy is blocked (cooldown, daily cap, or "
    "a rejected challenger waiting for new labelled windows)",
    Action.PENDING: "none yet; if the next window breaches too, the redeploy job acts (see `breach=`)",
}
#: The VERDICT status of each decision (``ok`` only when nothing breached).
STATUSES = {Action.REDEPLOY: "breach", Action.SUPPRESSED: "breach", Action.PENDING: "pending"}


def baseline_for(ctx: Context, model: str, version: str) -> dict | None:
    try:
        return load_artifact(ctx.artifacts_dir / model / version).metadata.get("holdout")
    except DataError as exc:
        log.warning("no training baseline for the live version %s", KV(version=version, error=str(exc)))
        return None


def trigger_redeploy_job(ctx: Context, decision: Decision) -> str:
    """``jobs.trigger: api``: start the redeploy job's run; returns its run id."""
    spec = next(j for j in ctx.cfg.jobs.graph if j.script == REDEPLOY_SCRIPT)
    job = next((j for j in ctx.platform.api.jobs() if j.name == spec.name), None)
    if job is None:
        raise DataError(f"job {spec.name!r} does not exist: run `cml-monitor graph apply` first")
    return ctx.platform.api.start_job_run(job.id, environment={"CML_MONITOR_DECISION": decision.id or ""}).id


def decisive_result(decision: Decision) -> PolicyResult | None:
    """The policy result a person should see first: a failing one that acts, else the first on the
    headline metric (the first policy's), else the first metric policy."""
    measured = [r for r in decision.results if r.value is not None and r.threshold is not None]
    failing = [r for r in measured if r.status == "fail" and r.action != "warn"]
    headline = [r for r in measured if r.metric == decision.metric]
    performance = [r for r in measured if r.kind not in ("drift", "min_labelled")]
    return (failing or headline or performance or measured or [None])[0]


def verdict_fields(decision: Decision, version: str | None) -> dict:
    """What on-call reads: deployment, window, the headline metric, the decisive policy's value, bound and threshold."""
    window = (
        f"{iso_ms(decision.window_start_ms)}..{iso_ms(decision.window_end_ms)}"
        if decision.window_start_ms is not None
        else None
    )
    result = decisive_result(decision)
    fields = dict(
        model=decision.model,
        deployment=decision.deployment_crn.rsplit("/", 1)[-1],
        version=version,
        window=window,
        labelled=decision.values.get("labelled"),
        decision=decision.id,
        decision_action=decision.action.value,
        breach=decision.streak(),
        metric=decision.metric,
    )
    if result is not None:
        fields.update(
            policy=result.policy,
            value=_round(result.value),
            bound=_round(result.bound),
            threshold=_round(result.threshold),
        )
    if "mape" in (decision.metric, result.metric if result else None):
        fields["zero_targets"] = decision.values.get("zero_targets")
    fields["warnings"] = decision.warnings_text()
    return fields


def _round(value):
    return round(value, 4) if isinstance(value, float) else value


def held_back(ctx: Context, decision: Decision, windows: list) -> Decision:
    """A redeploy decision suppressed when the last challenger was rejected on the same evidence."""
    if decision.action is not Action.REDEPLOY:
        return decision
    needed = ctx.cfg.retraining.gate.retry_after_windows
    blocker = retry_blocker(ctx.store.list_decisions(decision.model, limit=20), windows, needed)
    if blocker is None:
        return decision
    reason = decision.reason.replace("; redeploying: retrain, gate, build and deploy.", "")
    return replace(decision, action=Action.SUPPRESSED, reason=f"{reason}, but the redeploy is suppressed: {blocker}.")


def evaluate_thresholds(ctx: Context) -> Outcome:
    """Decide on the live deployment's windows; in ``api`` trigger mode, start the redeploy job on a breach."""
    now = ctx.platform.clock.now_ms()
    model, live = ctx.live_recorded()
    current = ctx.store.current_deployment(model.name)
    thresholds = ctx.cfg.thresholds
    windows = ctx.store.windows(deployment_crn=live.crn)
    decision = decide(
        windows=windows,
        policies=thresholds.policies,
        consecutive=thresholds.consecutive,
        cooldown_ms=to_ms(thresholds.cooldown),
        max_per_day=thresholds.max_redeploys_per_day,
        redeploy_times_ms=ctx.store.redeploys_since(model.name, now - max(DAY_MS, to_ms(thresholds.cooldown))),
        now_ms=now,
        model=model.name,
        deployment_crn=live.crn,
        baseline=baseline_for(ctx, model.name, current.version) if current else None,
        metric=headline_metric(ctx.cfg.model.task, policy_metric(thresholds.policies)),
    )
    decision = held_back(ctx, decision, windows)
    decision = ctx.store.decision(ctx.store.add_decision(decision))
    for result in decision.results:
        log.info(
            "policy %s",
            KV(
                policy=result.policy,
                status=result.status,
                value=result.value,
                bound=result.bound,
                threshold=result.threshold,
                reason=result.reason,
            ),
        )
    fields = verdict_fields(decision, current.version if current else None)
    fields.update({k: _round(v) for k, v in decision.values.items() if k in (decision.metric, "predictions")})
    if decision.action is Action.REDEPLOY and ctx.cfg.jobs.trigger == "api":
        fields["redeploy_run"] = trigger_redeploy_job(ctx, decision)
    fields.update(announce_decision(ctx, decision, fields, NEXT_STEPS[decision.action]))
    return Outcome(
        STATUSES.get(decision.action, "ok"),
        decision.reason,
        NEXT_STEPS[decision.action],
        fields,
    )
