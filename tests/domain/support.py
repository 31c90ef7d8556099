"""Shared helpers for the domain tests: CML-shaped metric records built in code (no files)."""

from __future__ import annotations

from typing import Any

FEATURES = ["iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4"]
WS = "crn:cdp:ml:us-west-1:8a1e15cd-04c2-48aa-8f35-b4a8c11997d3:workspace:e4bc3658-32bb-4dc3-a22d-828150329c76"
DEPLOYMENT = f"{WS}/161e0983-e67e-486d-a296-7be081be2410"
BUILD = f"{WS}/1be0bcfa-84a3-4002-a166-43e4035ef52b"
MODEL = f"{WS}/abb24234-ab2e-4e1f-954d-2ae1da1438ef"
#: 2026-11-23T10:00:00Z
T0 = 1_795_428_000_000


def record(uuid: str, start_ms: int | None, metrics: dict[str, Any], crn: str = DEPLOYMENT) -> dict[str, Any]:
    """One record exactly as ``cdsw.read_metrics()["metrics"]`` returns it."""
    return {
        "modelDeploymentCrn": crn,
        "modelBuildCrn": BUILD,
        "modelCrn": MODEL,
        "startTimeStampMs": start_ms,
        "endTimeStampMs": None if start_ms is None else start_ms + 110,
        "predictionUuid": uuid,
        "metrics": metrics,
    }


def prediction(
    uuid: str, start_ms: int | None, pred: Any, label: Any = None, features: dict | None = None, crn: str = DEPLOYMENT
) -> dict[str, Any]:
    """A prediction record with tracked inputs and, if given, a merged delayed label."""
    feats = (
        features
        if features is not None
        else {"iot_signal_1": 5.5, "iot_signal_2": 52.1, "iot_signal_3": 103.2, "iot_signal_4": 40.0}
    )
    metrics: dict[str, Any] = {"input_features": feats, "prediction": pred, "probability": 0.4, "model_version": "v1"}
    if label is not None:
        metrics["final_label"] = label
    return record(uuid, start_ms, metrics, crn)


def aggregate(start_ms: int, end_ms: int, accuracy: float, crn: str = DEPLOYMENT) -> dict[str, Any]:
    """An aggregate record from ``track_aggregate_metrics`` (empty prediction uuid)."""
    rec = record("", start_ms, {"accuracy": accuracy}, crn)
    rec["endTimeStampMs"] = end_ms
    return rec


def model_spec(features: Any = None, label: Any = "final_label", task: str = "classification", **extra: Any):
    """A model spec as config gives it: ``features`` as names (numeric) or ``{"name", "kind"}`` dicts."""
    from monitoring.config.model_spec import ModelConfig

    return ModelConfig.model_validate(
        {"name": "m", "task": task, "features": FEATURES if features is None else features, "label": label, **extra}
    )
