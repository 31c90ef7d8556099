"""Where a serving model came from: deployment -> build -> registered version (or artifact) -> run -> data and decision.

``cml-monitor lineage`` prints it for the serving deployment or any version; the dashboard's model
page shows the same chain. Each link is read from where it lives: the platform (deployment, build),
the registry (the build's ``registered_model_version_id``), the artifact's metadata, the MLflow run
(by the registry's run id, else the run tagged with the version), and the state store's decision.
A link that cannot be followed is shown as missing with why, never guessed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from monitoring.cmlclient.refs import DeploymentRef
from monitoring.cmlclient.registry import Registry
from monitoring.core.errors import DataError, MonitoringError
from monitoring.core.logs import KV
from monitoring.domain.training.artifacts import METADATA_FILE
from monitoring.lifecycle.experiment_run import DECISION_TAG, find_run
from monitoring.lifecycle.switch import experiments_on
from monitoring.workflows.context import Context, version_of
from monitoring.workflows.training_runs import VERSION_TAG, registered_name

log = logging.getLogger(__name__)


def _deployment_of(ctx: Context, model: Any, version: str | None) -> DeploymentRef | None:
    api = ctx.platform.api
    if version is None:
        return ctx.require_live(model)
    made = [d for b in api.builds(model) for d in api.deployments(model, b.id) if version_of(d) == version]
    return max(made, key=lambda d: d.created_at, default=None)


def _artifact(ctx: Context, version: str) -> dict[str, Any] | None:
    path = ctx.artifacts_dir / ctx.cfg.model.name / version
    try:
        meta = json.loads((path / METADATA_FILE).read_text())
    except (OSError, ValueError):
        return None
    keep = ("trainer", "metric", "trained_at_ms", "n_train", "training_window", "parent_version", "reason", "holdout")
    return {"path": path.relative_to(ctx.project_root).as_posix(), **{k: meta.get(k) for k in keep}}


def lineage(ctx: Context, version: str | None = None) -> dict[str, Any]:
    """The chain of the serving deployment (``version`` None) or of ``version``, as one JSON-safe mapping.

    Raises:
        DataError: the model does not exist, nothing serves it (no ``version`` given), or ``version``
            was never saved nor deployed.
    """
    model = ctx.require_model()
    deployment = _deployment_of(ctx, model, version)
    version = version or (version_of(deployment) if deployment else None)
    chain: dict[str, Any] = {"model": model.name, "version": version}
    artifact = _artifact(ctx, version) if version else None
    if deployment is None and artifact is None:
        raise DataError(f"version {version!r} of {model.name!r} was never deployed and has no artifact")
    chain["deployment"] = None
    chain["build"] = None
    registered_id = ""
    if deployment is not None:
        chain["deployment"] = {"id": deployment.id, "status": deployment.status, "created_at": deployment.created_at}
        build = next((b for b in ctx.platform.api.builds(model) if b.id == deployment.build_id), None)
        if build is not None:
            registered_id = build.registered_model_version_id
            chain["build"] = {"id": build.id, "status": build.status, "comment": build.comment}
    chain["registered_version"] = _registered(ctx, registered_id) if registered_id else None
    chain["artifact"] = artifact
    chain["run"] = _run(ctx, version, chain["registered_version"])
    decision_id = (chain["run"] or {}).get("tags", {}).get(DECISION_TAG) or (artifact or {}).get("reason")
    chain["decision"] = _decision(ctx, decision_id)
    return chain


def _registered(ctx: Context, version_id: str) -> dict[str, Any]:
    registry = Registry(ctx.platform.api)
    try:
        model_id = registry.find_model_id(registered_name(ctx.cfg))
        found = next((v for v in registry.versions(model_id) if v.version_id == version_id), None) if model_id else None
    except MonitoringError as exc:
        return {"id": version_id, "missing": f"the registry did not answer: {exc}"}
    if found is None:
        return {"id": version_id, "missing": "deleted from the registry"}
    return {"id": found.version_id, "number": found.number, "aliases": list(found.aliases), "run_id": found.run_id}


def _run(ctx: Context, version: str | None, registered: dict[str, Any] | None) -> dict[str, Any] | None:
    if not version or not experiments_on(ctx.cfg):
        return None
    try:
        run = find_run(ctx.cfg.model.name, (registered or {}).get("run_id"), {VERSION_TAG: version})
    except MonitoringError as exc:
        log.warning("the training run could not be read %s", KV(version=version, error=str(exc)))
        return {"missing": f"the tracking server did not answer: {exc}"}
    return run


def _decision(ctx: Context, decision_id: str | None) -> dict[str, Any] | None:
    if not decision_id or decision_id in ("bootstrap", "train-only", "rollback"):
        return {"id": None, "what": decision_id} if decision_id else None
    found = ctx.store.decision(decision_id)
    if found is None:
        return {"id": decision_id, "missing": "not in the state store"}
    return {
        "id": found.id,
        "action": found.action.value,
        "reason": found.reason,
        "window_start_ms": found.window_start_ms,
        "window_end_ms": found.window_end_ms,
        "outcome": found.outcome,
        "consumed_by": found.consumed_by,
    }


def format_lineage(chain: dict[str, Any], fmt: str = "text") -> str:
    """``chain`` as JSON, or one indented line per link."""
    if fmt == "json":
        return json.dumps(chain, indent=1, sort_keys=True, default=str)
    lines = [f"{chain['model']} {chain['version']}"]
    for link in ("deployment", "build", "registered_version", "artifact", "run", "decision"):
        value = chain.get(link)
        if value is None:
            lines.append(f"  {link}: none")
            continue
        parts = []
        for key, item in value.items():
            if isinstance(item, dict):
                item = ", ".join(f"{k}={v}" for k, v in sorted(item.items()))
            parts.append(f"{key}={item}")
        lines.append(f"  {link}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"
