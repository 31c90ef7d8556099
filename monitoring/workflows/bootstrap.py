"""bootstrap: train the first version on pre-drift data, create the model, build, deploy and verify it."""

from __future__ import annotations

import logging

from monitoring.domain.data import TelcoScenario
from monitoring.workflows.context import Context, Outcome, version_of
from monitoring.workflows.release import release
from monitoring.workflows.retrain import fit_candidate, sample_request, save_candidate

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
    scenario = TelcoScenario.from_config(cfg)
    frame = scenario.generate(cfg.scenario.training_rows, ctx.rng(0, 0), drift_level=0.0)
    candidate = fit_candidate(ctx, frame)
    version, rel = save_candidate(ctx, candidate, version_of(live) if live else None, "bootstrap")
    if model is None:
        model = api.create_model(cfg.model.name, cfg.model.description, cfg.model.auth_enabled)
    deployed = release(ctx, model, rel, version, "bootstrap", sample_request(ctx, candidate.holdout))
    return Outcome(
        "deployed",
        f"trained and deployed {version} (held-out accuracy {candidate.holdout_metrics['accuracy']:.3f})",
        "none",
        dict(
            model=model.name,
            version=version,
            deployment=deployed.id,
            accuracy=round(candidate.holdout_metrics["accuracy"], 4),
        ),
    )


def train_only(ctx: Context) -> Outcome:
    """Train and save the next version without deploying it (AMP setup deploys it with its own tasks)."""
    frame = TelcoScenario.from_config(ctx.cfg).generate(ctx.cfg.scenario.training_rows, ctx.rng(0, 0), drift_level=0.0)
    candidate = fit_candidate(ctx, frame)
    version, rel = save_candidate(ctx, candidate, None, "train-only")
    return Outcome(
        "ok",
        f"trained {version} into {rel} (held-out accuracy {candidate.holdout_metrics['accuracy']:.3f})",
        "none",
        dict(version=version, artifact=rel),
    )
