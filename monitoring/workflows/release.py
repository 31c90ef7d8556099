"""Ship one model version: build, wait, deploy, wait, smoke call, re-resolve; roll back on failure."""

from __future__ import annotations

import logging
import math
from typing import Any

from monitoring.cmlclient.api import DeploymentRef, ModelRef
from monitoring.cmlclient.registry import CHAMPION, RegisteredVersion, Registry
from monitoring.cmlclient.waits import wait_for_build, wait_for_deployment
from monitoring.config.ground_truth import TRACK_KEYS_ENV
from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import MonitoringError, RedeployError
from monitoring.core.logs import KV
from monitoring.domain.records.values import Reading, class_indexes_of_values
from monitoring.workflows.context import ARTIFACT_ENV, Context, version_of

log = logging.getLogger(__name__)


def _serving(previous: DeploymentRef | None) -> str:
    if previous is None:
        return "no deployment served before"
    return f"the previous deployment {previous.id} ({version_of(previous)}) keeps serving"


def serving_env(ctx: Context) -> dict[str, str]:
    """Deployment environment besides the artifact: the business keys the serving function tracks."""
    gt = ctx.cfg.ground_truth
    return {TRACK_KEYS_ENV: ",".join(gt.tracked_keys)} if gt is not None and gt.tracked_keys else {}


def _deploy_build(ctx: Context, model: ModelRef, build_id: str, environment: dict[str, str]) -> DeploymentRef:
    dep_cfg = ctx.cfg.deployment
    deployment = ctx.platform.api.create_deployment(
        model, build_id, dep_cfg.cpu, dep_cfg.memory, dep_cfg.replicas, environment
    )
    log.info("deployment created %s", KV(deployment=deployment.id, build=build_id))
    return wait_for_deployment(
        ctx.platform, model, deployment, dep_cfg.deploy_timeout.total_seconds(), dep_cfg.poll_interval.total_seconds()
    )


def smoke_test(ctx: Context, model: ModelRef, request: dict[str, Any]) -> None:
    """One real call through the model service; raises if the answer is not a scored prediction."""
    endpoint = ctx.platform.endpoint(model, ctx.cfg.scenario.request_timeout.total_seconds())
    try:
        prediction, uuid = endpoint.predict(request)
    finally:
        endpoint.close()
    problem = prediction_problem(prediction, ctx.cfg.model)
    if problem:
        raise RedeployError(f"smoke call returned prediction {prediction!r}: {problem}")
    log.info("smoke call answered %s", KV(prediction=prediction, uuid=uuid))


def prediction_problem(prediction: Any, spec: ModelConfig) -> str | None:
    """Why a served prediction does not fit the model spec (None when it does): a classifier must
    answer one of ``spec.classes`` (``1`` and ``"1"`` alike), a regressor a finite number."""
    if spec.is_classifier:
        reading = Reading.of(spec)
        index, not_class, unreadable = class_indexes_of_values([prediction], reading)
        if math.isnan(index[0]) or bool(not_class[0]) or bool(unreadable[0]):
            return f"expected one of {spec.classes}"
        return None
    if isinstance(prediction, bool) or not isinstance(prediction, (int, float)) or not math.isfinite(prediction):
        return "expected a finite number (a regression model)"
    return None


def release(
    ctx: Context,
    model: ModelRef,
    artifact_rel: str,
    version: str,
    label: str,
    smoke_request: dict[str, Any],
    registered: RegisteredVersion | None = None,
) -> DeploymentRef:
    """Build and deploy ``artifact_rel``; verify it serves; on failure keep or restore the previous one.

    Args:
        artifact_rel: artifact directory relative to the project root (goes into the deployment env).
        label: unique text for the build comment (decision id or "bootstrap"), so a retried
            create can find the build it already made.
        registered: the registered version of this model (``lifecycle.builds: registry``): the build is
            made from it, and once the deployment is verified its alias becomes ``champion``.

    Returns:
        The new live deployment (re-resolved after deploying: its CRN is new).

    Raises:
        RedeployError: the build or deployment failed; the previous deployment serves.
    """
    api = ctx.platform.api
    dep_cfg = ctx.cfg.deployment
    previous = api.live_deployment(model)
    build_id = api.create_build(
        model,
        ctx.cfg.model.serving_file,
        ctx.cfg.model.serving_function,
        comment=f"cml-monitor {version} {label}",
        runtime_identifier=dep_cfg.runtime_identifier or ctx.cfg.jobs.runtime_identifier,
        registered_model_version_id=registered.version_id if registered else None,
    )
    log.info("build started %s", KV(model=model.name, version=version, build=build_id))
    try:
        wait_for_build(
            ctx.platform, model, build_id, dep_cfg.build_timeout.total_seconds(), dep_cfg.poll_interval.total_seconds()
        )
    except RedeployError as exc:
        raise RedeployError(f"{exc}; nothing was deployed and {_serving(previous)} (see the build's log)") from exc
    deployment: DeploymentRef | None = None
    try:
        deployment = _deploy_build(ctx, model, build_id, {ARTIFACT_ENV: artifact_rel, **serving_env(ctx)})
        smoke_test(ctx, model, smoke_request)
        live = api.live_deployment(model)
        if live is None or live.id != deployment.id:
            raise RedeployError(
                f"after deploying {deployment.id}, the live deployment is {live.id if live else 'none'}"
            )
    except MonitoringError as exc:
        try:
            if deployment is None:  # the create failed, but may have taken effect anyway (a lost answer)
                deployment = _created_anyway(ctx, model, build_id)
            restored = rollback(ctx, model, deployment, previous)
        except MonitoringError as again:
            raise RedeployError(
                f"deploying {version} failed ({exc}); the rollback failed too ({again}): "
                "check which deployment serves, then re-run redeploy"
            ) from exc
        raise RedeployError(f"deploying {version} failed ({exc}); {restored}") from exc
    ctx.store.record_deployment(model.name, live.crn, model.crn, build_id, version, ctx.platform.clock.now_ms(), label)
    if registered is not None:
        _crown(ctx, registered)
    return live


def _crown(ctx: Context, registered: RegisteredVersion) -> None:
    """Move the registry's ``champion`` alias to the version now serving (a failure is only logged: it serves)."""
    try:
        Registry(ctx.platform.api).set_alias(registered, CHAMPION)
    except MonitoringError as exc:
        log.warning(
            "the verified version serves but its alias was not moved %s",
            KV(registered=registered.version_id, alias=CHAMPION, error=str(exc)),
        )


def _created_anyway(ctx: Context, model: ModelRef, build_id: str) -> DeploymentRef | None:
    """The newest deployment of ``build_id``, if creating it failed only in the answer (it must be stopped too)."""
    try:
        found = ctx.platform.api.deployments(model, build_id)
    except MonitoringError as exc:
        log.warning("could not list the new build's deployments %s", KV(build=build_id, error=str(exc)))
        return None
    made = max((d for d in found if d.status not in ("stopped", "failed")), key=lambda d: d.created_at, default=None)
    if made is not None:
        log.warning("the failed create made a deployment anyway; stopping it %s", KV(deployment=made.id))
    return made


def rollback(ctx: Context, model: ModelRef, failed: DeploymentRef | None, previous: DeploymentRef | None) -> str:
    """Stop a failed deployment and make sure the previous one serves; returns what was done."""
    api = ctx.platform.api
    if failed is not None:
        try:
            current = api.get_deployment(model, failed.build_id, failed.id)
            if current.status not in ("stopped", "failed"):
                api.stop_deployment(model, current)
        except MonitoringError as exc:
            log.warning("could not stop the failed deployment %s", KV(deployment=failed.id, error=str(exc)))
    if previous is None:
        return "there was no previous deployment to restore"
    live = api.live_deployment(model)
    if live is not None and live.id == previous.id:
        return f"the previous deployment {previous.id} ({version_of(previous)}) kept serving"
    log.warning("previous deployment was replaced, restoring it %s", KV(build=previous.build_id))
    restored = _deploy_build(ctx, model, previous.build_id, previous.environment)
    ctx.store.record_deployment(
        model.name,
        restored.crn,
        model.crn,
        previous.build_id,
        version_of(previous),
        ctx.platform.clock.now_ms(),
        "rollback",
    )
    return f"rolled back: {version_of(previous)} serves again as deployment {restored.id}"
