"""rollback: deploy an earlier version again (an artifact or a registered version), as a person's decision, once.

``cml-monitor rollback --to VERSION --reason TEXT`` records a decision (action ``rollback``) whose id
is a digest of the model, the version and the reason: the same call again, after it finished or while
another run holds it, finds that decision and changes nothing (it says so). The version is built and
deployed by ``release``: smoke-called, re-resolved, and on failure the deployment that served before
serves again (exit 5). A registered version (``lifecycle.builds: registry``) is built from its
``registered_model_version_id`` and becomes the ``champion``.
"""

from __future__ import annotations

import hashlib
import logging

from monitoring.cmlclient.registry import RegisteredVersion, Registry
from monitoring.core.errors import ConfigError, DataError, MonitoringError
from monitoring.core.logs import KV
from monitoring.domain.decisions.decision import Action, Decision
from monitoring.domain.training.artifacts import METADATA_FILE
from monitoring.workflows.context import Context, Outcome, version_of
from monitoring.workflows.release import release
from monitoring.workflows.retrain import initial_frame, sample_request
from monitoring.workflows.training_runs import ARTIFACT_TAG, VERSION_TAG, registered_name

log = logging.getLogger(__name__)

#: What a finished rollback records as the decision's outcome (not "deployed": it counts toward no cap).
ROLLED_BACK = "rolled_back"


def rollback_id(model: str, target: str, reason: str) -> str:
    """The decision id of one rollback request: the same model, version and reason give the same id."""
    return "r-" + hashlib.sha256(f"{model}\0{target}\0{reason}".encode()).hexdigest()[:16]


def _registered(ctx: Context, target: str) -> RegisteredVersion | None:
    """The registered version ``target`` names (its id, or the artifact version it was registered as)."""
    registry = Registry(ctx.platform.api)
    model_id = registry.find_model_id(registered_name(ctx.cfg))
    if model_id is None:
        return None
    versions = registry.versions(model_id)
    return next((v for v in versions if target in (v.version_id, v.tags.get(VERSION_TAG))), None)


def _resolve(ctx: Context, target: str) -> tuple[str, str, RegisteredVersion | None]:
    """``(version, artifact path relative to the project, registered version or None)`` of ``target``.

    Raises:
        DataError: no saved artifact and no registered version of that name (or it was deleted).
    """
    name = ctx.cfg.model.name
    registered = _registered(ctx, target) if ctx.cfg.lifecycle.builds == "registry" or "-v" in target else None
    version = registered.tags.get(VERSION_TAG, target) if registered else target
    rel = registered.tags.get(ARTIFACT_TAG) if registered else None
    rel = rel or (ctx.artifacts_dir / name / version).relative_to(ctx.project_root).as_posix()
    if not (ctx.project_root / rel / METADATA_FILE).is_file():
        raise DataError(
            f"cannot roll {name!r} back to {target!r}: no artifact at {rel}"
            + ("" if registered else " and no registered version of that name (deleted, or never registered)")
            + "; `cml-monitor lineage --version V` shows what a version was made of"
        )
    return version, rel, registered


def rollback(ctx: Context, target: str, reason: str, person: str) -> Outcome:
    """Deploy ``target`` again, recorded as a decision with ``person``'s ``reason``; exactly once per request.

    Raises:
        ConfigError: an empty reason.
        DataError: the model, a live deployment or the version cannot be found.
        RedeployError: build, deploy or verification failed; the previous deployment serves.
    """
    if not reason.strip():
        raise ConfigError("rollback --reason is empty: say why, it is recorded with the decision")
    model, live = ctx.live_recorded()
    decision_id = rollback_id(model.name, target, reason)
    fields = dict(model=model.name, decision=decision_id, to=target, by=person)
    done = ctx.store.decision(decision_id)
    if done is not None:
        state = (
            f"acted on by run {done.consumed_by} (outcome {done.outcome})"
            if done.outcome
            else (f"claimed by run {done.consumed_by}, which has not finished (or was killed)")
        )
        return Outcome(
            "no_action",
            f"this rollback (decision {decision_id}) was already {state}; nothing done twice",
            "none",
            fields,
        )
    version, rel, registered = _resolve(ctx, target)
    now = ctx.now_ms()
    decision = Decision(
        id=decision_id,
        created_ms=now,
        model=model.name,
        deployment_crn=live.crn,
        window_start_ms=None,
        window_end_ms=None,
        values={"from": version_of(live), "to": version, "by": person},
        results=[],
        action=Action.ROLLBACK,
        reason=f"rollback to {version} by {person}: {reason}",
    )
    try:
        ctx.store.add_decision(decision)
    except DataError:  # another run recorded it a moment ago
        return Outcome(
            "no_action", f"this rollback (decision {decision_id}) is being acted on by another run", "none", fields
        )
    if not ctx.store.claim_decision(decision_id, ctx.platform.run_id, now):
        return Outcome(
            "no_action", f"this rollback (decision {decision_id}) was claimed by another run", "none", fields
        )
    if version_of(live) == version:
        summary = f"{version} already serves (deployment {live.id}); nothing to roll back"
        ctx.store.finish_decision(decision_id, "no_action", summary, ctx.now_ms())
        return Outcome("no_action", summary, "none", fields)
    log.info("rolling back %s", KV(**fields, version=version, registered=registered.version_id if registered else None))
    try:
        deployed = release(ctx, model, rel, version, decision_id, sample_request(ctx, initial_frame(ctx)), registered)
    except MonitoringError as exc:
        ctx.store.finish_decision(decision_id, "failed", str(exc), ctx.now_ms())
        raise
    summary = f"rolled back from {version_of(live)} to {version} (deployment {deployed.id}) by {person}: {reason}"
    ctx.store.finish_decision(decision_id, ROLLED_BACK, summary, ctx.now_ms())
    return Outcome("deployed", summary, "none", {**fields, "version": version, "deployment": deployed.id})
