"""Each training as an MLflow run (``lifecycle.experiments``): what bootstrap and redeploy call, and what the run holds.

A run's params are the strategy, the rows, the window of data and the trainer; its metrics the
held-out metrics of the candidate, and on a retrain the challenger's and the champion's value of the
judged metric (and the gate's numbers); its tags the decision, the job run and the config digest,
then the version (and artifact) it became. A tracking server that fails fails the run with exit 3
before anything is saved or deployed, unless ``lifecycle.tracking_errors: continue``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from monitoring.cmlclient.registry import CHALLENGER, RegisteredVersion, Registry
from monitoring.core.errors import PlatformError
from monitoring.core.logs import KV
from monitoring.domain.data.sources import TIME_COLUMN
from monitoring.lifecycle.experiment_run import DECISION_TAG, MODEL_PATH, TrainingRecord, log_training, tag_run
from monitoring.lifecycle.switch import config_digest, experiments_on
from monitoring.workflows.context import Context
from monitoring.workflows.retrain import Candidate

log = logging.getLogger(__name__)

#: Run tags set once the candidate is saved: the version it became and where its artifact is.
VERSION_TAG, ARTIFACT_TAG, REGISTERED_TAG = "cml.version", "cml.artifact", "cml.registered_version"
#: Rows of the held-out data logged as the model's input example.
EXAMPLE_ROWS = 5


def _strategy(ctx: Context, fields: dict[str, Any]) -> str:
    if "strategy" in fields:
        return str(fields["strategy"])
    return "recent+training" if ctx.cfg.data.retraining.include_training else "recent"


def _window(candidate: Candidate) -> dict[str, int]:
    times = candidate.train.get(TIME_COLUMN)
    if times is None or not len(times) or not times.notna().all():
        return {}
    return {"window_start_ms": int(times.min()), "window_end_ms": int(times.max())}


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in values.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def log_candidate(
    ctx: Context, kind: str, candidate: Candidate, decision_id: str | None, fields: dict[str, Any]
) -> TrainingRecord | None:
    """Log one training (``bootstrap`` or a retrain's ``challenger``) when experiments are on.

    Args:
        fields: the verdict's fields so far (a retrain's ``metric``, ``champion_value``, ``challenger_value``,
            ``gate_*``); ``experiment_run`` is added to them.

    Returns:
        Where the run is, or None when experiments are off (or the server failed and errors are let go).

    Raises:
        ConfigError: ``lifecycle.experiments: on`` with no tracking URI.
        PlatformError: the tracking server failed (``lifecycle.tracking_errors: fail``); nothing was saved.
    """
    cfg = ctx.cfg
    if not experiments_on(cfg):
        return None
    spec = cfg.model
    metric = fields.get("metric")
    metrics = {f"holdout_{k}": v for k, v in _numbers(candidate.holdout_metrics).items()}
    if metric:
        metrics |= {
            f"challenger_{metric}": fields.get("challenger_value"),
            f"champion_{metric}": fields.get("champion_value"),
        }
    metrics |= {k: v for k, v in _numbers(fields).items() if k.startswith("gate")}
    params = {
        "strategy": _strategy(ctx, fields),
        "rows": len(candidate.train),
        "held_out_rows": len(candidate.holdout),
        **_window(candidate),
        "trainer": candidate.fitted.trainer,
        "metric": metric,
        "champion_version": fields.get("champion"),
        "champion_judged_by": fields.get("champion_judged_by"),
    }
    try:
        record = log_training(
            spec.name,
            kind,
            candidate.estimator,
            candidate.holdout[spec.feature_names].head(EXAMPLE_ROWS),
            params=params,
            metrics=metrics,
            decision_id=decision_id,
            job_run_id=ctx.platform.run_id,
            config_digest=config_digest(cfg),
        )
    except PlatformError as exc:
        if cfg.lifecycle.tracking_errors == "fail":
            raise PlatformError(
                f"{exc}; the training was not saved or deployed (lifecycle.tracking_errors: continue goes on without "
                "logging)"
            ) from exc
        log.warning("training not logged to MLflow, going on %s", KV(error=str(exc)))
        fields["experiment_run"] = "not logged"
        return None
    fields["experiment_run"] = record.run_id
    return record


def mark_saved(
    ctx: Context, record: TrainingRecord | None, version: str, artifact_rel: str, decision_id: str | None
) -> RegisteredVersion | None:
    """Tag the run with the version its model was saved as; with ``lifecycle.builds: registry``, register
    it as a new version of the registered model (alias ``challenger``), the run and the version naming
    each other and the decision.

    Returns:
        The registered version to build from, or None (file builds, or nothing logged).

    Raises:
        PlatformError: the tracking server or the registry failed (``lifecycle.tracking_errors: fail``);
            nothing is deployed.
    """
    if record is None:
        return None
    cfg = ctx.cfg
    try:
        tag_run(record, {VERSION_TAG: version, ARTIFACT_TAG: artifact_rel})
    except PlatformError as exc:
        if cfg.lifecycle.tracking_errors == "fail":
            raise PlatformError(f"{exc}; {version} was saved but not deployed") from exc
        log.warning("run not tagged with its version, going on %s", KV(run=record.run_id, error=str(exc)))
        return None
    if cfg.lifecycle.builds != "registry":
        return None
    registry = Registry(ctx.platform.api)
    tags = {DECISION_TAG: decision_id or "bootstrap", VERSION_TAG: version, ARTIFACT_TAG: artifact_rel}
    try:
        registered = registry.register(registered_name(cfg), record.experiment_id, record.run_id, MODEL_PATH, tags)
        registry.set_alias(registered, CHALLENGER)
        tag_run(record, {REGISTERED_TAG: registered.version_id})
    except PlatformError as exc:
        raise PlatformError(f"registering {version} failed ({exc}); nothing was deployed") from exc
    log.info("registered %s", KV(version=version, registered=registered.version_id, run=record.run_id))
    return registered


def registered_name(cfg: Any) -> str:
    """The registered model of this monitored model (``lifecycle.registered_model``, else ``model.name``)."""
    return cfg.lifecycle.registered_model or cfg.model.name
