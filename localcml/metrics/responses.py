"""The model metrics service's handlers: what ``cdsw``/``cml.metrics_v1`` calls, one HTTP call each.

Bodies are camelCase JSON as Cloudera's SDK sends them to CML's monitoring service:
``{"modelDeploymentCrn", "modelBuildCrn", "modelCrn", "predictionUuid", "startTimestampMs",
"endTimestampMs", "metrics"}`` (note the lower-case s in ``Timestamp`` on requests; records come
back with ``startTimeStampMs``, as ``read_metrics`` returns them in CML).
"""

from __future__ import annotations

from typing import Any

from localcml.metrics.store import MetricsStore


class MetricsError(Exception):
    """A refused metrics call: HTTP ``status`` and a message naming the record or field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _text(body: dict, key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise MetricsError(400, f"{key} must be a string, got {type(value).__name__}")
    return value


def _ms(body: dict, key: str, default: int | None = None) -> int | None:
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).lstrip("-").isdigit():
        raise MetricsError(400, f"{key} must be milliseconds since the epoch, got {value!r}")
    return int(value)


class MetricsApi:
    """Handlers ``handler(body) -> response dict`` over one store.

    Args:
        store: the workspace's model metrics store.
        now_ms: the workspace clock (``read-metrics`` ends at now by default).
    """

    def __init__(self, store: MetricsStore, now_ms):
        self.store = store
        self.now_ms = now_ms

    @staticmethod
    def _refused(exc: ValueError) -> MetricsError:
        text = str(exc)
        return MetricsError(404 if text.startswith("no prediction record") else 400, text)

    def track_metrics(self, body: dict) -> dict:
        try:
            self.store.track_prediction(
                _text(body, "modelDeploymentCrn") or "",
                _text(body, "modelBuildCrn") or "",
                _text(body, "modelCrn") or "",
                _text(body, "predictionUuid") or "",
                _ms(body, "startTimestampMs"),
                _ms(body, "endTimestampMs"),
                body.get("metrics"),
            )
        except ValueError as exc:
            raise self._refused(exc) from None
        return {}

    def track_delayed_metrics(self, body: dict) -> dict:
        try:
            self.store.track_delayed(body.get("metrics"), _text(body, "predictionUuid") or "")
        except ValueError as exc:
            raise self._refused(exc) from None
        return {}

    def track_aggregate_metrics(self, body: dict) -> dict:
        try:
            self.store.track_aggregate(
                body.get("metrics"),
                _ms(body, "startTimestampMs"),
                _ms(body, "endTimestampMs"),
                _text(body, "modelDeploymentCrn") or "",
                model_crn=_text(body, "modelCrn"),
                build_crn=_text(body, "modelBuildCrn"),
            )
        except ValueError as exc:
            raise self._refused(exc) from None
        return {}

    def read_metrics(self, body: dict) -> dict[str, Any]:
        crns = [_text(body, k) for k in ("modelDeploymentCrn", "modelCrn", "modelBuildCrn")]
        if not any(crns):
            raise MetricsError(400, "read-metrics needs modelDeploymentCrn, modelCrn or modelBuildCrn")
        start = _ms(body, "startTimestampMs", 0)
        end = _ms(body, "endTimestampMs")
        records = self.store.read(
            crns[0], start, self.now_ms() if end is None else end, model_crn=crns[1], build_crn=crns[2]
        )
        return {"metrics": records}
