"""Decisions and redeploy outcomes told to on-call through the configured webhook, beside the job log.

A message has a Slack-compatible ``text`` plus structured fields (``event``, ``model``,
``summary``, ``action``, ``fields``, ...). Telling is best effort: a webhook that is down costs
one warning line and ``webhook=failed`` in the VERDICT, never the job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from cmlbase.clock import iso_ms
from monitoring.cmlclient.webhook import Webhook
from monitoring.core.errors import MonitoringError
from monitoring.core.logs import KV
from monitoring.domain.decisions.decision import Action, Decision
from monitoring.workflows.context import Context, Outcome

log = logging.getLogger(__name__)

#: The decisions worth telling, by the webhook event they are told as.
DECISION_EVENTS = {Action.REDEPLOY: "breach", Action.SUPPRESSED: "suppressed"}
HEADLINES = {
    "breach": "policy breached, redeploying",
    "suppressed": "policy breached, redeploy SUPPRESSED",
    "deployed": "redeployed",
    "rejected": "retrained model rejected, champion kept",
    "failed": "redeploy FAILED",
}


def announce_decision(ctx: Context, decision: Decision, fields: dict[str, Any], action: str) -> dict[str, Any]:
    """Tell a breach or a suppressed breach (other decisions are not told).

    Args:
        fields: the decision's VERDICT fields, sent along.
        action: what on-call should do.

    Returns:
        ``{"webhook": "sent" | "failed" | "unset"}`` for the VERDICT, or ``{}`` when nothing was told.
    """
    event = DECISION_EVENTS.get(decision.action)
    if event is None:
        return {}
    return tell(ctx, event, decision.model, decision.reason, action, fields)


def announce_outcome(ctx: Context, fields: dict[str, Any], act: Callable[[], Outcome]) -> Outcome:
    """Run ``act`` (retrain and release) and tell its outcome: deployed, rejected, or failed.

    The outcome, or the error (which is raised again), carries ``webhook=...`` for the VERDICT.

    Args:
        fields: the redeploy's fields so far (model, decision), sent along on failure.
    """
    model = str(fields.get("model", ctx.cfg.model.name))
    try:
        outcome = act()
    except MonitoringError as exc:
        told = tell(ctx, "failed", model, str(exc).splitlines()[0], "read the redeploy job's log", fields, exc)
        exc.verdict_fields.update(told)
        raise
    except Exception as exc:
        tell(ctx, "failed", model, f"{type(exc).__name__}: {exc}", "read the redeploy job's log", fields, exc)
        raise
    if outcome.status in ("deployed", "rejected"):
        outcome.fields.update(tell(ctx, outcome.status, model, outcome.summary, outcome.action, outcome.fields))
    return outcome


def tell(
    ctx: Context,
    event: str,
    model: str,
    summary: str,
    action: str,
    fields: dict[str, Any],
    error: BaseException | None = None,
) -> dict[str, Any]:
    """Post one message if the webhook is configured and wants ``event``; log a warning when it fails.

    Returns:
        ``{"webhook": status}`` for the VERDICT, or ``{}`` when nothing was to be told.
    """
    cfg = ctx.cfg.alerts.webhook
    hook = Webhook.from_config(cfg, sleep=ctx.platform.sleep)
    if hook is None or event not in cfg.events:
        return {}
    message = {
        "text": f"cml-monitor: {model}: {HEADLINES[event]}. {summary} Next: {action}",
        "source": "cml-monitor",
        "event": event,
        "model": model,
        "project": ctx.platform.api.project_id,
        "run": ctx.platform.run_id,
        "time": iso_ms(ctx.platform.clock.now_ms()),
        "summary": summary,
        "action": action,
        "fields": {k: v for k, v in fields.items() if v is not None},
    }
    if error is not None:
        message["error"] = type(error).__name__
        message["exit_code"] = getattr(error, "exit_code", None)
    delivery = hook.post(message, f"decision webhook ({event})")
    if delivery.status == "sent":
        log.info("webhook told %s", KV(event=event, attempts=delivery.attempts, answer=delivery.detail))
    else:
        log.warning(
            "webhook not told (the job goes on) %s",
            KV(event=event, webhook=delivery.status, attempts=delivery.attempts, reason=delivery.detail),
        )
    return {"webhook": delivery.status}
