"""check-deployment adopts a model the user registered and serves: its registered version becomes the champion."""

from __future__ import annotations

from monitoring.cmlclient.registry import Registry
from monitoring.cmlclient.waits import wait_for_build, wait_for_deployment
from monitoring.core.errors import EXIT_OK
from monitoring.domain.training.artifacts import load_artifact
from monitoring.lifecycle.experiment_run import MODEL_PATH, log_training
from monitoring.workflows.adoption import check_deployment
from monitoring.workflows.context import ARTIFACT_ENV
from monitoring.workflows.retrain import initial_frame
from tests.lifecycle.conftest import MLFLOW_MARKS

pytestmark = MLFLOW_MARKS


def _serve_from_the_registry(rig):
    """What a user does: log the model as a run, register it through API v2, build from the version, deploy."""
    ctx, name = rig.ctx, rig.cfg.model.name
    artifact = load_artifact(ctx.artifacts_dir / name / "v1")
    example = initial_frame(ctx)[rig.cfg.model.feature_names].head(3)
    record = log_training(
        name,
        "bootstrap",
        artifact.estimator,
        example,
        params={},
        metrics={},
        decision_id=None,
        job_run_id="by-hand",
        config_digest="user",
    )
    registry = Registry(ctx.platform.api)
    version = registry.register(name, record.experiment_id, record.run_id, MODEL_PATH, {"team": "risk"})
    api = ctx.platform.api
    model = rig.model
    build_id = api.create_build(
        model, rig.cfg.model.serving_file, rig.cfg.model.serving_function, "by hand", None, version.version_id
    )
    wait_for_build(ctx.platform, model, build_id, 120, 0.2)
    made = api.create_deployment(model, build_id, 1, 2, 1, {ARTIFACT_ENV: f"var/models/{name}/v1"})
    wait_for_deployment(ctx.platform, model, made, 120, 0.2)
    return version


def test_check_deployment_adopts_the_users_registered_version_as_the_champion(rig):
    version = _serve_from_the_registry(rig)
    assert version.aliases == ()
    code, verdict = rig.job("check_deployment", check_deployment)
    assert code == EXIT_OK and verdict["status"] == "ok", rig.last_log[-3000:]
    assert verdict["registered"] == version.version_id and verdict["champion"] == "adopted"
    registry = Registry(rig.ctx.platform.api)
    (got,) = registry.versions(version.model_id)
    assert got.aliases == ("champion",)
    code, verdict = rig.job("check_deployment", check_deployment)
    assert code == EXIT_OK and verdict["champion"] == "already"
