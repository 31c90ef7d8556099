"""bootstrap: train the first version on the initial training data, create the model, build, deploy and verify it."""

from __future__ import annotations

import logging

from monitoring.workflows.context import Context, Outcome, Training, version_of
from monitoring.workflows.release import release
from monitoring.workflows.retrain import (
    Candidate,
    first_candidate,
    headline,
    sample_request,
    save_candidate,
)
from monitoring.workflows.training_runs import log_candidate, mark_saved

log = logging.getLogger(__name__)


def bootstrap(ctx: Context, force: bool = False) -> Outcome:
    """Make sure the configured model exists and serves; train and deploy v1 (or a new version) if not.

    Args:
        force: train and deploy a new version even when a deployment already serves.
    """
    cfg, api = ctx.cfg, ctx.platform.api
    model = api.find_model(cfg.model.name)
    live = api.live_deployment(model) if model else None
    if live is not None and not force:
        ctx.record_discovered(model, live)
        return Outcome(
            "no_action",
            f"{cfg.model.name} already serves {version_of(live)}",
            "none",
            dict(model=model.name, deployment=live.id, version=version_of(live)),
        )
    candidate = first_candidate(ctx)
    run = log_candidate(ctx, "bootstrap", candidate, None, {})
    version, rel = save_candidate(ctx, candidate, version_of(live) if live else None, "bootstrap")
    registered = mark_saved(ctx, run, version, rel, None)
    if model is None:
        registered_id = registered.model_id if registered else None
        model = api.create_model(cfg.model.name, cfg.model.description, cfg.model.auth_enabled, registered_id)
    deployed = release(ctx, model, rel, version, "bootstrap", sample_request(ctx, candidate.holdout), registered)
    metric, value = _headline(ctx, candidate)
    return Outcome(
        "deployed",
        f"trained and deployed {version} (held-out {metric} {_shown(value)})",
        "none",
        {"model": model.name, "version": version, "deployment": deployed.id, metric: value},
    )


def train_only(ctx: Training) -> Outcome:
    """Train and save the next version without deploying it (AMP setup deploys it with its own tasks).

    It needs no platform and no state store: ``cml-monitor bootstrap --train-only`` runs it on an
    ``OfflineContext``, starting no local workspace and creating no store.
    """
    candidate = first_candidate(ctx)
    version, rel = save_candidate(ctx, candidate, None, "train-only")
    metric, value = _headline(ctx, candidate)
    return Outcome(
        "ok",
        f"trained {version} into {rel} (held-out {metric} {_shown(value)})",
        "none",
        {"version": version, "artifact": rel, metric: value},
    )


def _headline(ctx: Training, candidate: Candidate) -> tuple[str, float | None]:
    metric, value = headline(ctx, candidate.holdout_metrics)
    return metric, None if value is None else round(value, 4)


def _shown(value: float | None) -> str:
    return "undefined" if value is None else f"{value:.4g}"
