"""check-deployment: does a model already served (deployed by other means) meet the contract cml-monitor reads?

The contract (docs/production.md, "Adopt a model you already serve"): the predict function is
decorated with ``cdsw.model_metrics`` and tracks, per prediction, ``input_features``,
``prediction`` and ``model_version``, plus the business key the ground-truth job joins on. The
check calls the deployed model once with a row of the configured data and reads the record back.
"""

from __future__ import annotations

import logging
import math
import uuid as uuid_mod
from typing import Any

from monitoring.cmlclient.refs import DeploymentRef, ModelRef
from monitoring.cmlclient.registry import CHAMPION, Registry
from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import EXIT_DATA, DataError
from monitoring.core.logs import KV
from monitoring.workflows.context import Context, Outcome, version_of
from monitoring.workflows.retrain import initial_frame, sample_request
from monitoring.workflows.training_runs import registered_name

log = logging.getLogger(__name__)

MODEL_VERSION = "model_version"
#: The check's own prediction carries this key value, so that no real label ever joins it.
PROBE_PREFIX = "cml-monitor-check-"
#: Reads of the metrics store while the record is not there yet (CML may write it a moment later).
READ_ATTEMPTS = 10
READ_PAUSE_S = 1.0
#: How far around the call the record is looked for (clocks of the caller and the store differ).
SLACK_MS = 5 * 60_000


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def contract_problems(metrics: dict[str, Any], ctx: Context, key: str | None, probe: str | None) -> list[str]:
    """What the record of one prediction lacks, each naming the metric and what was expected."""
    spec: ModelConfig = ctx.cfg.model
    windows = ctx.cfg.windows
    problems = []
    features = metrics.get(windows.features_key)
    if not isinstance(features, dict):
        problems.append(f"{windows.features_key!r}: not tracked (expected {{feature name: value}})")
        features = {}
    missing = [n for n in spec.feature_names if n not in features]
    if missing:
        problems.append(f"{windows.features_key!r}: lacks the feature(s) {missing}")
    for name, kind in spec.kinds.items():
        value = features.get(name)
        if value is None:
            continue
        if kind == "numeric" and not _is_number(value):
            problems.append(f"{windows.features_key}[{name!r}]: {value!r} is not a number (a numeric feature)")
        if kind == "categorical" and not isinstance(value, str):
            problems.append(f"{windows.features_key}[{name!r}]: {value!r} is not text (a categorical feature)")
    prediction = windows.prediction_key
    if prediction not in metrics:
        problems.append(f"{prediction!r}: not tracked (expected the predicted class or number)")
    elif spec.is_classifier and str(metrics[prediction]) not in {str(c) for c in spec.classes}:
        problems.append(f"{prediction!r}: {metrics[prediction]!r} is not one of model.label.classes {spec.classes}")
    elif not spec.is_classifier and not _is_number(metrics[prediction]):
        problems.append(f"{prediction!r}: {metrics[prediction]!r} is not a number (a regression)")
    if not isinstance(metrics.get(MODEL_VERSION), str) or not metrics[MODEL_VERSION]:
        problems.append(f"{MODEL_VERSION!r}: not tracked (expected the version served, as text)")
    if key is not None:
        tracked = metrics.get(key, features.get(key))
        if tracked is None:
            problems.append(f"{key!r} (ground_truth.key): not tracked, so labels keyed by it cannot be joined")
        elif str(tracked) != probe:
            problems.append(f"{key!r} (ground_truth.key): tracked {tracked!r}, not the request's {probe!r}")
    return problems


def _read_back(ctx: Context, crn: str, uuid: str, called_ms: int) -> dict[str, Any] | None:
    platform = ctx.platform
    for attempt in range(READ_ATTEMPTS):
        now = platform.clock.now_ms()
        for record in platform.metrics.read(crn, called_ms - SLACK_MS, now + SLACK_MS):
            if record.get("predictionUuid") == uuid:
                return record
        if attempt + 1 < READ_ATTEMPTS:
            platform.sleep(READ_PAUSE_S)
    return None


def check_deployment(ctx: Context) -> Outcome:
    """Call the live deployment once with a row of the configured data and check its record.

    Returns:
        Outcome ``ok`` when the contract is met; ``contract_not_met`` (exit 4) naming each metric
        that is missing or wrong.

    Raises:
        DataError: no model or live deployment, the data cannot be read, or the answer has no uuid.
        PlatformError: the endpoint or the metrics store failed after retries.
    """
    cfg = ctx.cfg
    model, live = ctx.live_recorded()
    gt = cfg.ground_truth
    key = gt.tracked_keys[0] if gt is not None and gt.tracked_keys else None
    request = sample_request(ctx, initial_frame(ctx))
    probe = f"{PROBE_PREFIX}{uuid_mod.uuid4().hex[:12]}" if key else None
    if key:
        request[key] = probe
    endpoint = ctx.platform.endpoint(model, cfg.scenario.request_timeout.total_seconds())
    called = ctx.platform.clock.now_ms()
    try:
        answer, uuid = endpoint.predict(request)
    finally:
        endpoint.close()
    fields = dict(model=model.name, deployment=live.id, version=version_of(live), prediction_uuid=uuid)
    record = _read_back(ctx, live.crn, uuid, called)
    if record is None:
        raise DataError(
            f"the model answered (prediction {uuid}) but no record with that uuid is in the metrics store of "
            f"deployment {live.id} after {READ_ATTEMPTS} reads: is the predict function decorated with "
            "cdsw.model_metrics?"
        )
    metrics = record.get("metrics") if isinstance(record.get("metrics"), dict) else {}
    problems = contract_problems(metrics, ctx, key, probe)
    fields.update(tracked=sorted(metrics), problems=len(problems))
    if problems:
        for p in problems:
            log.error("contract not met %s", KV(problem=p))
        return Outcome(
            "contract_not_met",
            f"the record of prediction {uuid} lacks what cml-monitor reads: " + "; ".join(problems),
            "make the predict function track what is named (see docs/production.md, 'Adopt a model you already "
            "serve'), redeploy it, and check again",
            fields,
            exit_code=EXIT_DATA,
        )
    notes = (
        ""
        if metrics.get(cfg.windows.probability_key) is not None or not cfg.model.is_classifier
        else ("; no probability tracked: roc_auc and log_loss are not computed for it")
    )
    log.info("answer %s", KV(prediction=answer))
    fields.update(adopt_registered(ctx, model, live))
    return Outcome(
        "ok",
        f"deployment {live.id} meets the contract: prediction {uuid} tracked {', '.join(sorted(metrics))}{notes}",
        "none",
        fields,
    )


def adopt_registered(ctx: Context, model: ModelRef, live: DeploymentRef) -> dict[str, str]:
    """A deployment built from a registered version the user made: that version becomes the ``champion``.

    Returns:
        Verdict fields: ``registered`` (the version id) and ``champion`` (``adopted`` or ``already``);
        none when the build has no registered version.
    """
    build = next((b for b in ctx.platform.api.builds(model) if b.id == live.build_id), None)
    if build is None or not build.registered_model_version_id:
        return {}
    registry, name = Registry(ctx.platform.api), registered_name(ctx.cfg)
    model_id = registry.find_model_id(name)
    version_id = build.registered_model_version_id
    found = next((v for v in registry.versions(model_id) if v.version_id == version_id), None) if model_id else None
    if found is None:
        log.warning(
            "the serving build's registered version is not a version of lifecycle.registered_model %s",
            KV(registered=version_id, registered_model=name),
        )
        return {"registered": version_id, "champion": f"not a version of {name}"}
    if CHAMPION in found.aliases:
        return {"registered": version_id, "champion": "already"}
    registry.set_alias(found, CHAMPION)
    log.info("adopted the registered version as the champion %s", KV(registered=version_id, registered_model=name))
    return {"registered": version_id, "champion": "adopted"}
