"""The ``cdsw`` model-metrics functions of the local workspace, same names and keywords as CML's.

Where the records go:
- in a model replica (``CML_MONITOR_DEPLOYMENT_CRN`` set) and for every ``dev=False`` call: the
  workspace's metrics service, one HTTP call per operation (``localcml.metrics.transport``);
- with ``dev=True``, and for decorated calls outside a replica (CML's "dev mode" in a session):
  a store private to this process, deleted when it exits, under ``dev_model_deployment_crn``.
Timestamps come from ``cmlbase.clock.clock_from_env()`` (the workspace's warp clock).
"""

from __future__ import annotations

import atexit
import contextvars
import functools
import logging
import os
import shutil
import tempfile
import threading
import uuid as uuid_lib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from cmlbase.clock import clock_from_env
from localcml.core import hosts
from localcml.core.errors import ConfigError
from localcml.metrics import transport
from localcml.metrics.store import MetricsStore, encode_metrics

__all__ = [
    "model_metrics",
    "track_metric",
    "track_delayed_metrics",
    "track_aggregate_metrics",
    "read_metrics",
    "call_model",
    "dev_model_deployment_crn",
]

log = logging.getLogger(__name__)

DEPLOYMENT_CRN_ENV = "CML_MONITOR_DEPLOYMENT_CRN"
BUILD_CRN_ENV = "CML_MONITOR_BUILD_CRN"
MODEL_CRN_ENV = "CML_MONITOR_MODEL_CRN"
DOMAIN_ENV = "CDSW_DOMAIN"
#: Seconds ``call_model`` waits for the endpoint (CML answers 429 ``model.busy`` after 30 s).
CALL_TIMEOUT_S = 60

#: The deployment CRN of metrics tracked in dev mode (outside a model replica).
dev_model_deployment_crn = "crn:cdp:ml:local:dev:workspace:local/dev-model-deployment"

_current: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("cml_model_metrics", default=None)
_lock = threading.Lock()
_stores: dict[str, MetricsStore] = {}
_stores_pid = os.getpid()
_dev_dir: str | None = None


def _cached(url: str) -> MetricsStore:
    global _stores_pid
    with _lock:
        if _stores_pid != os.getpid():  # connections never cross a fork
            _stores.clear()
            _stores_pid = os.getpid()
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = MetricsStore(url)
        return store


def close_stores() -> None:
    """Close and forget this process's cached stores (not part of cdsw; for tests and daemons)."""
    with _lock:
        for store in _stores.values():
            store.close()
        _stores.clear()


def _remove_dev_dir() -> None:
    if _dev_dir:
        shutil.rmtree(_dev_dir, ignore_errors=True)


def _dev_store() -> MetricsStore:
    """This process's dev-mode store, created lazily (CML keeps dev metrics in the session's memory)."""
    global _dev_dir
    with _lock:
        if _dev_dir is None:
            _dev_dir = tempfile.mkdtemp(prefix="cml-monitor-dev-metrics-")
            atexit.register(_remove_dev_dir)
    return _cached(f"sqlite:///{Path(_dev_dir) / 'dev-metrics.db'}")


def _now_ms() -> int:
    return clock_from_env().now_ms()


def model_metrics(func: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    """Decorate a model function so each call records one metrics record.

    Each call gets a new uuid4; ``track_metric`` calls made during it go into that record,
    which is written (with start and end times) when the function returns. A call that
    raises writes nothing.

    Args:
        func: the model function, e.g. ``predict(args)``.

    Returns:
        A wrapper returning ``{"prediction": <func's return value>, "uuid": "<uuid4>"}``.

    Raises:
        ValueError: (from the wrapper) a tracked value is NaN, infinite or not JSON.
        MetricsWriteError: (from the wrapper, in a replica) the metrics service could not write
            the record: the call fails, as its prediction is not recorded.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> dict[str, Any]:
        prediction_uuid = str(uuid_lib.uuid4())
        metrics: dict[str, Any] = {}
        clock = clock_from_env()
        start = clock.now_ms()
        token = _current.set(metrics)
        try:
            prediction = func(*args, **kwargs)
        finally:
            _current.reset(token)
        end = clock.now_ms()
        deployment = os.environ.get(DEPLOYMENT_CRN_ENV)
        if not deployment:  # CML's dev mode: a session keeps its own records
            _dev_store().track_prediction(dev_model_deployment_crn, "", "", prediction_uuid, start, end, metrics)
        else:
            encode_metrics(metrics)  # refuse what is not JSON here, as the SDK does, before any call
            body = {
                "modelDeploymentCrn": deployment,
                "modelBuildCrn": os.environ.get(BUILD_CRN_ENV, ""),
                "modelCrn": os.environ.get(MODEL_CRN_ENV, ""),
                "predictionUuid": prediction_uuid,
                "startTimestampMs": start,
                "endTimestampMs": end,
                "metrics": metrics,
            }
            try:
                transport.call("/track-metrics", body)
            except transport.MetricsServiceError as exc:
                raise transport.MetricsWriteError(f"the prediction's metrics record was not written: {exc}") from exc
        return {"prediction": prediction, "uuid": prediction_uuid}

    return wrapper


def track_metric(key: str, value: Any) -> None:
    """Add ``key: value`` to the current prediction's metrics (inside a decorated call).

    Outside a decorated call this is an experiment metric, which the local workspace only
    logs (at debug level); like CML, it then accepts only scalar values and string keys.

    Raises:
        ValueError: outside a decorated call, a non-string key or a dict/list/tuple value.
    """
    metrics = _current.get()
    if metrics is not None:
        metrics[key] = value
        return
    if not isinstance(key, str) or isinstance(value, (dict, list, tuple)):
        raise ValueError(
            f"experiment metric {key!r}: key must be a string and value a scalar "
            "(dict values are only allowed inside a model_metrics-decorated call)"
        )
    log.debug("experiment metric %s=%r (not inside a model_metrics call; not stored)", key, value)


def track_delayed_metrics(metrics: dict[str, Any], prediction_uuid: str, dev: bool = False) -> None:
    """Merge ``metrics`` (e.g. ground truth) into the record of an earlier prediction.

    Raises:
        ValueError: no record with that uuid, or invalid metrics.
        ConfigError: no workspace to send it to (dev=False outside a local engine or activated shell).
        MetricsServiceError: the metrics service is unreachable or failed.
    """
    if dev:
        _dev_store().track_delayed(metrics, prediction_uuid)
        return
    encode_metrics(metrics)
    transport.call("/track-delayed-metrics", {"predictionUuid": prediction_uuid, "metrics": metrics})


def track_aggregate_metrics(
    metrics: dict[str, Any],
    start_timestamp_ms: int,
    end_timestamp_ms: int,
    model_deployment_crn: str | None = None,
    dev: bool = False,
) -> None:
    """Write a metrics record for a time window of a deployment (``predictionUuid == ""``).

    Args:
        metrics: e.g. ``{"accuracy": 0.91}``.
        start_timestamp_ms, end_timestamp_ms: the window the metrics cover.
        model_deployment_crn: the deployment's CRN (inside a replica: defaults to its own).
        dev: write to the process's dev store.

    Raises:
        ValueError: no deployment CRN, end before start, or invalid metrics.
    """
    crn = model_deployment_crn or os.environ.get(DEPLOYMENT_CRN_ENV) or (dev_model_deployment_crn if dev else None)
    if not crn:
        raise ValueError("track_aggregate_metrics needs model_deployment_crn= (ModelDeployment.crn)")
    own = crn == os.environ.get(DEPLOYMENT_CRN_ENV)
    model_crn = os.environ.get(MODEL_CRN_ENV) if own else None
    build_crn = os.environ.get(BUILD_CRN_ENV) if own else None
    if dev:
        _dev_store().track_aggregate(metrics, start_timestamp_ms, end_timestamp_ms, crn, model_crn, build_crn)
        return
    encode_metrics(metrics)
    transport.call(
        "/track-aggregate-metrics",
        {
            "modelDeploymentCrn": crn,
            "modelCrn": model_crn,
            "modelBuildCrn": build_crn,
            "startTimestampMs": start_timestamp_ms,
            "endTimestampMs": end_timestamp_ms,
            "metrics": metrics,
        },
    )


def read_metrics(
    model_deployment_crn: str | None = None,
    start_timestamp_ms: int | None = None,
    end_timestamp_ms: int | None = None,
    model_crn: str | None = None,
    model_build_crn: str | None = None,
    dev: bool = False,
) -> dict[str, list[dict[str, Any]]]:
    """Metrics records whose ``startTimeStampMs`` lies in ``[start, end]`` (both inclusive).

    Args:
        model_deployment_crn, model_crn, model_build_crn: which records; at least one is
            needed, except inside a replica (its own deployment) or with ``dev=True``.
        start_timestamp_ms: default 0.
        end_timestamp_ms: default now (the workspace clock).
        dev: read the process's dev store.

    Returns:
        ``{"metrics": [record, ...]}`` in CML's record shape, ordered by start time.

    Raises:
        ValueError: no CRN given outside a replica.
    """
    if model_deployment_crn is None and model_crn is None and model_build_crn is None:
        model_deployment_crn = os.environ.get(DEPLOYMENT_CRN_ENV) or (dev_model_deployment_crn if dev else None)
        if model_deployment_crn is None:
            raise ValueError("read_metrics needs model_deployment_crn=, model_crn= or model_build_crn=")
    start = 0 if start_timestamp_ms is None else start_timestamp_ms
    end = _now_ms() if end_timestamp_ms is None else end_timestamp_ms
    if dev:
        return {"metrics": _dev_store().read(model_deployment_crn, start, end, model_crn, model_build_crn)}
    body = {
        "modelDeploymentCrn": model_deployment_crn,
        "modelCrn": model_crn,
        "modelBuildCrn": model_build_crn,
        "startTimestampMs": int(start),
        "endTimestampMs": int(end),
    }
    return {"metrics": transport.call("/read-metrics", body)["metrics"]}


def _get_model_call_endpoint() -> str:
    """The model endpoint URL: ``http://modelservice.$CDSW_DOMAIN/model`` in the local workspace.

    Raises:
        ConfigError: ``CDSW_DOMAIN`` is not set.
    """
    domain = os.environ.get(DOMAIN_ENV)
    if not domain:
        raise ConfigError(f"{DOMAIN_ENV} is not set: it is the workspace host:port (set for local engines)")
    return f"http://modelservice.{domain}/model"


def call_model(model_access_key: str, ipt: dict[str, Any], api_key: str | None = None) -> dict[str, Any]:
    """POST ``{"accessKey", "request": ipt}`` to the model endpoint.

    Args:
        model_access_key: the model's access key.
        ipt: the request dict passed to the model function.
        api_key: the model API key, sent as ``Authorization: Bearer``, when auth is on.

    Returns:
        The endpoint's whole JSON body: ``{"success": true, "response": {"prediction", "uuid"}}``
        on success, ``{"success": false, "error": {"code", "message"}}`` on refusal.

    Raises:
        TypeError: ``ipt`` is not a dict.
        RuntimeError: the endpoint answered with a body that is not JSON.
        requests.RequestException: the endpoint could not be reached.
    """
    if not isinstance(ipt, dict):
        raise TypeError(f"call_model: ipt must be a dict, got {type(ipt).__name__}")
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    hosts.install()
    response = requests.post(
        _get_model_call_endpoint(),
        json={"accessKey": model_access_key, "request": ipt},
        headers=headers,
        timeout=CALL_TIMEOUT_S,
    )
    try:
        return response.json()
    except ValueError:
        raise RuntimeError(
            f"model endpoint answered HTTP {response.status_code} with a body that is not JSON: {response.text[:200]!r}"
        ) from None
