"""One deployment's metrics over one window: what compute_windows yields, policies judge and the store keeps."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from monitoring.config.metric_registry import METRICS as REGISTRY
from monitoring.core.errors import DataError

#: The per-window scores of every task, in the registry's order (None when undefined on a window).
METRICS = tuple(REGISTRY)
#: Per-window latency statistics (ms), optional: None when a window has no latency values.
LATENCY = ("latency_p50_ms", "latency_p95_ms")
_REQUIRED = ("deployment_crn", "start_ms", "end_ms")
#: The JSON fields issue 24 added, each kept in a store column of its name (schema version 10).
EXTRA_BLOBS = ("estimated", "slices", "joint_drift", "quality")


def bound_key(metric: str, confidence: float) -> str:
    """The key of a metric's bounds at a confidence in ``WindowMetrics.bounds``: ``"mae@0.95"``."""
    return f"{metric}@{confidence:g}"


def window_start(ms: int, window_ms: int) -> int:
    """The start of the epoch-aligned window of length ``window_ms`` that holds ``ms``."""
    return (ms // window_ms) * window_ms


def number_or_none(value: Any) -> float | None:
    """A plain float, or None for missing/NaN (numpy scalars accepted)."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


@dataclass
class WindowMetrics:
    """Metrics of one deployment over one window ``[start_ms, end_ms)``.

    Attributes:
        deployment_crn: the deployment the predictions came from.
        start_ms: window start (a multiple of the window length since the epoch).
        end_ms: window end, exclusive.
        predictions: predictions in the window (a classifier's: those naming one of the classes).
        labelled: of those, how many were scored: a label that is one of the classes (a
            regressor's: a finite target and prediction). Coverage is labelled / predictions.
        accuracy: share of labelled predictions that were right (None when nothing is labelled).
        precision: for the positive class (binary) or the macro average (None when undefined:
            no labels, or a zero denominator).
        recall: as precision.
        f1: as precision.
        confusion: binary ``{"tp", "fp", "tn", "fn"}``; otherwise ``{"labels", "matrix"}`` with
            rows = true class, columns = predicted class.
        drift: ``{feature: {"psi", "ks"}}`` against the training reference (empty when there
            is no reference or too few rows).
        latency_p50_ms: median prediction latency of the window's rows with a prediction, in ms;
            None when none of them has a (finite) latency. Reported only: no policy reads it.
        latency_p95_ms: the 95th percentile, likewise (numpy's default "linear" method).
        unknown_class: rows whose prediction or label is not one of the classes (left out);
            None when not known (the state store does not keep it).
        roc_auc, log_loss: a classifier's, when its probabilities are tracked (else None).
        mae, rmse, mape, r2, bias: a regressor's (``monitoring.config.metric_registry`` says each one's
            direction and bound).
        zero_targets: a regressor's labelled rows whose target is 0: MAPE (a fraction of the
            target) leaves them out, so it is over ``labelled - zero_targets`` rows. None for a
            classifier, and for windows stored before schema version 8.
        bounds: confidence bounds of some metrics, ``{bound_key(metric, confidence): {"low",
            "high", "method"}}``: those a policy or the report needs (``bound``).
        estimated: performance estimated without labels (``monitoring.domain.estimation``),
            ``{metric: {"value", "low", "high", "rows", "realized", "error"}}``: the estimate, its
            95% interval, the rows it is over, and once labels land the realized metric and the
            estimation error (estimate - realized); empty without an estimation model.
        slices: ``{slice: {"stats", "metrics", "ref"}}`` (``monitoring.domain.slices``): each configured
            slice's counts, its metrics with 95% bounds, and the same slice's counts at training.
        joint_drift: the domain classifier's ``{"auc", "low", "high", "rows", "drivers"}``
            (``monitoring.domain.multivariate``); empty when not computed.
        quality: ``{feature: {"missing", "out_of_range" | "unseen"}}``, shares of the window's rows.
    """

    deployment_crn: str
    start_ms: int
    end_ms: int
    predictions: int = 0
    labelled: int = 0
    accuracy: float | None = None
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    confusion: dict[str, Any] = field(default_factory=dict)
    drift: dict[str, dict[str, float | None]] = field(default_factory=dict)
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    unknown_class: int | None = None
    roc_auc: float | None = None
    log_loss: float | None = None
    mae: float | None = None
    rmse: float | None = None
    mape: float | None = None
    r2: float | None = None
    bias: float | None = None
    zero_targets: int | None = None
    bounds: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimated: dict[str, dict[str, Any]] = field(default_factory=dict)
    slices: dict[str, dict[str, Any]] = field(default_factory=dict)
    joint_drift: dict[str, Any] = field(default_factory=dict)
    quality: dict[str, dict[str, float]] = field(default_factory=dict)

    @classmethod
    def from_obj(cls, obj: Any) -> WindowMetrics:
        """From a dict (e.g. parsed JSON) or any object with these attributes; NaN metrics become None.

        Raises:
            DataError: a required field (deployment_crn, start_ms, end_ms) is missing.
        """
        if isinstance(obj, cls):
            return obj
        get = obj.get if isinstance(obj, Mapping) else (lambda k, d=None: getattr(obj, k, d))
        missing = [k for k in _REQUIRED if get(k) is None]
        if missing:
            raise DataError(f"window {obj!r}: missing required field(s) {', '.join(missing)}")
        drift = {
            str(f): {k: number_or_none(v) for k, v in dict(stats).items()}
            for f, stats in dict(get("drift") or {}).items()
        }
        unknown, zero = get("unknown_class"), get("zero_targets")
        bounds = {str(k): dict(v) for k, v in dict(get("bounds") or {}).items() if isinstance(v, Mapping)}
        estimated = {str(k): dict(v) for k, v in dict(get("estimated") or {}).items() if isinstance(v, Mapping)}
        return cls(
            deployment_crn=str(get("deployment_crn")),
            start_ms=int(get("start_ms")),
            end_ms=int(get("end_ms")),
            predictions=int(get("predictions") or 0),
            labelled=int(get("labelled") or 0),
            **{m: number_or_none(get(m)) for m in METRICS},
            confusion=dict(get("confusion") or {}),
            drift=drift,
            **{k: number_or_none(get(k)) for k in LATENCY},
            unknown_class=None if unknown is None else int(unknown),
            zero_targets=None if zero is None else int(zero),
            bounds=bounds,
            estimated=estimated,
            **{k: dict(get(k) or {}) for k in EXTRA_BLOBS[1:]},
        )

    def scores(self) -> dict[str, float]:
        """The metrics that are defined on this window (``METRICS`` order)."""
        return {m: v for m in METRICS if (v := getattr(self, m)) is not None}

    def value(self, metric: str) -> float | None:
        """One metric's value (None when undefined or not a metric).

        Raises:
            DataError: ``metric`` is not a metric name.
        """
        if metric not in METRICS:
            raise DataError(f"unknown metric {metric!r} (known: {', '.join(METRICS)})")
        return getattr(self, metric)

    def bound(self, metric: str, confidence: float) -> tuple[float, float] | None:
        """The ``(low, high)`` bounds of a metric at a confidence, when they were computed."""
        item = self.bounds.get(bound_key(metric, confidence))
        if item is None:
            return None
        low, high = number_or_none(item.get("low")), number_or_none(item.get("high"))
        return None if low is None or high is None else (low, high)

    def estimate(self, metric: str) -> dict[str, Any] | None:
        """The estimate of ``metric`` without labels (``estimated``), when one was made."""
        item = self.estimated.get(metric)
        return item if item is not None and number_or_none(item.get("value")) is not None else None

    def rows_note(self, metric: str) -> str:
        """What ``metric`` leaves out when it is not every labelled row, for a reason: MAPE's
        ``" (109 of 1,014 labelled rows have target 0: left out of MAPE)"``; else ``""``."""
        if metric != "mape" or not self.zero_targets:
            return ""
        return f" ({self.zero_targets:,} of {self.labelled:,} labelled rows have target 0: left out of MAPE)"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict of every field."""
        return asdict(self)
