"""A training as an MLflow run in the experiment named after the model, and its registration.

Inside CML the platform configures ``mlflow`` (the engine's tracking URI); locally the workspace sets
``MLFLOW_TRACKING_URI``. ``log_training`` records one training (bootstrap, retrain, or a
challenger/champion evaluation): params, metrics, the tags that tie it to a decision, a job run and
a configuration, and the model with its signature and an input example. ``register`` adds the run's
model as a new version of one registered model, only after the run is complete, so a tracking
server down during a retrain fails the retrain with ``PlatformError`` and leaves no version behind.
Secrets never become params or tags: a key that names one, or a value the process knows as a secret
(the redactor's), is dropped with a warning that names the key only.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmlbase.logs import names_a_secret
from monitoring.core.errors import ConfigError, PlatformError
from monitoring.core.logs import KV, REDACTOR

log = logging.getLogger(__name__)

#: Where the model is logged in its run (the lab's ``artifact_path``).
MODEL_PATH = "artifacts"
#: Tags every training run carries.
DECISION_TAG, JOB_RUN_TAG, CONFIG_TAG, KIND_TAG = (
    "cml.decision_id",
    "cml.job_run_id",
    "cml.config_digest",
    "cml.training",
)
KINDS = ("bootstrap", "retrain", "challenger", "champion")
#: Keys that name a secret, whatever their value.
#: How often one MLflow call is retried before the training fails (MLflow's own default waits minutes).
HTTP_RETRIES = "2"


@dataclass(frozen=True)
class TrainingRecord:
    """Where a training was recorded: ``run_id`` in ``experiment_id``; ``version`` once registered."""

    experiment_id: str
    run_id: str
    model_uri: str
    version: str | None = None


def experiment_name(model: str) -> str:
    """The experiment of a model's trainings (named after the model, as CML experiments are)."""
    if not model.strip():
        raise ConfigError("model.name is empty: the experiment of its trainings is named after it")
    return model


def safe_fields(fields: Mapping[str, Any], what: str) -> dict[str, str]:
    """``fields`` as MLflow strings, less secrets (by key or by known value); None values dropped."""
    out = {}
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if names_a_secret(key) or REDACTOR(text) != text:
            log.warning("not logged to MLflow %s", KV(field=f"{what}.{key}", reason="it holds a secret"))
            continue
        out[key] = text[:6000]
    return out


@contextlib.contextmanager
def _bounded_retries() -> Iterator[None]:
    old = os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES")
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = old or HTTP_RETRIES
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)


def artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment keeps its artifacts: next to a local database store (MLflow's own default
    is ``./mlruns`` in the working directory, a stray folder in whatever checkout runs the job); None
    for a server, which decides itself."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlflow-artifacts").resolve().as_uri()
    return None


def _failed(step: str, exc: Exception) -> PlatformError:
    return PlatformError(
        f"MLflow {step} failed ({type(exc).__name__}: {REDACTOR(str(exc))[:300]}); nothing was registered"
    )


def log_training(
    model: str,
    kind: str,
    estimator: Any,
    input_example: Any,
    *,
    params: Mapping[str, Any],
    metrics: Mapping[str, float | None],
    decision_id: str | None,
    job_run_id: str | None,
    config_digest: str,
) -> TrainingRecord:
    """Record one training as a finished MLflow run, its model logged with a signature and an example.

    Raises:
        PlatformError: the tracking server cannot be reached or refuses (the run, if it was started,
            is ended ``FAILED``; nothing is registered).
    """
    if kind not in KINDS:
        raise ValueError(f"training kind {kind!r} is not one of {KINDS}")
    import mlflow
    from mlflow.models import infer_signature
    from sklearn.base import BaseEstimator

    loggable = isinstance(estimator, BaseEstimator)
    if not loggable:
        log.warning(
            "the run is logged without its model %s",
            KV(model=model, estimator=type(estimator).__name__, reason="only scikit-learn models are logged"),
        )
    tags = safe_fields(
        {KIND_TAG: kind, DECISION_TAG: decision_id, JOB_RUN_TAG: job_run_id, CONFIG_TAG: config_digest}, "tags"
    )
    client = mlflow.MlflowClient()
    with _bounded_retries():
        try:
            found = client.get_experiment_by_name(experiment_name(model))
            experiment_id = (
                found.experiment_id
                if found
                else client.create_experiment(
                    experiment_name(model), artifact_location=artifact_location(mlflow.get_tracking_uri())
                )
            )
            run = client.create_run(experiment_id, tags=tags, run_name=f"{kind}-{decision_id or 'none'}")
        except Exception as exc:  # MLflow raises many types for one unreachable server
            raise _failed("start of the training run", exc) from exc
        run_id = run.info.run_id
        try:
            for key, value in safe_fields(params, "params").items():
                client.log_param(run_id, key, value)
            for key, value in metrics.items():
                if value is not None:
                    client.log_metric(run_id, key, float(value))
            model_uri = ""
            if loggable:
                prediction = estimator.predict(input_example)
                with mlflow.start_run(run_id=run_id):
                    model_uri = mlflow.sklearn.log_model(
                        estimator,
                        name=MODEL_PATH,
                        signature=infer_signature(input_example, prediction),
                        input_example=input_example,
                        serialization_format="cloudpickle",  # skops refuses tree models by default
                    ).model_uri
            client.set_terminated(run_id, "FINISHED")
        except Exception as exc:
            with contextlib.suppress(Exception):
                client.set_terminated(run_id, "FAILED")
            raise _failed("logging of the training run", exc) from exc
    log.info("training logged to MLflow %s", KV(experiment=experiment_id, run=run_id, kind=kind, decision=decision_id))
    return TrainingRecord(experiment_id, run_id, model_uri)


def tag_run(record: TrainingRecord, tags: Mapping[str, Any]) -> None:
    """Add ``tags`` to a finished run (the version it became, the artifact it was saved as).

    Raises:
        PlatformError: the tracking server cannot be reached or refuses.
    """
    import mlflow

    client = mlflow.MlflowClient()
    with _bounded_retries():
        try:
            for key, value in safe_fields(tags, "tags").items():
                client.set_tag(record.run_id, key, value)
        except Exception as exc:
            raise _failed(f"tagging of run {record.run_id}", exc) from exc


def register(
    record: TrainingRecord, registered_name: str, alias: str | None = None, tags: Mapping[str, Any] | None = None
) -> TrainingRecord:
    """A new version of ``registered_name`` from the run's model (the alias, e.g. ``challenger``, moved to it).

    Raises:
        ConfigError: the run has no model (not a scikit-learn one): it cannot be registered.
        PlatformError: the registry refused or could not be reached (a version it created is deleted again).
    """
    import mlflow

    if not record.model_uri:
        raise ConfigError(
            f"run {record.run_id} logged no model (only scikit-learn models are logged): it cannot be "
            "registered; use lifecycle.builds: file"
        )

    client = mlflow.MlflowClient()
    with _bounded_retries():
        try:
            with contextlib.suppress(mlflow.exceptions.MlflowException):
                client.create_registered_model(registered_name)
            version = client.create_model_version(
                registered_name,
                f"runs:/{record.run_id}/{MODEL_PATH}",
                run_id=record.run_id,
                tags=safe_fields(tags or {}, "tags"),
            )
        except Exception as exc:
            raise _failed("registration", exc) from exc
        try:
            if alias:
                client.set_registered_model_alias(registered_name, alias, version.version)
        except Exception as exc:
            with contextlib.suppress(Exception):
                client.delete_model_version(registered_name, version.version)
            raise _failed(f"alias {alias!r} of version {version.version}", exc) from exc
    return TrainingRecord(record.experiment_id, record.run_id, record.model_uri, str(version.version))


def _run_view(run: Any) -> dict[str, Any]:
    return {
        "run_id": run.info.run_id,
        "experiment_id": run.info.experiment_id,
        "status": run.info.status,
        "params": dict(run.data.params),
        "metrics": dict(run.data.metrics),
        "tags": {k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
    }


def find_run(model: str, run_id: str | None = None, tags: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """A training run of ``model``: by id, or the newest whose tags are ``tags``; None when there is none.

    Raises:
        PlatformError: the tracking server cannot be reached or refuses.
    """
    import mlflow

    client = mlflow.MlflowClient()
    with _bounded_retries():
        try:
            if run_id:
                return _run_view(client.get_run(run_id))
            found = client.get_experiment_by_name(experiment_name(model))
            if found is None:
                return None
            where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in (tags or {}).items())
            runs = client.search_runs(
                [found.experiment_id], filter_string=where, order_by=["attributes.start_time DESC"], max_results=1
            )
        except mlflow.exceptions.MlflowException as exc:
            if getattr(exc, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise _failed("search of the training runs", exc) from exc
        except Exception as exc:
            raise _failed("search of the training runs", exc) from exc
    return _run_view(runs[0]) if runs else None
