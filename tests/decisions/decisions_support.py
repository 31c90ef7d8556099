"""Builders shared by the decision tests: hourly windows and threshold policies."""

from __future__ import annotations

from monitoring.config.pipeline import AbsolutePolicy, DriftPolicy, MinLabelledPolicy, RelativeDropPolicy, WilsonPolicy
from monitoring.domain.windows.results import WindowMetrics

HOUR = 3_600_000
T0 = 1_763_884_800_000  # 2025-11-23T08:00:00Z
CRN = "crn:cdp:ml:us-west-1:tenant:workspace:ws/model/deployment-1"


def window(
    i: int,
    accuracy: float | None = 0.9,
    labelled: int = 200,
    predictions: int = 250,
    drift: dict | None = None,
    crn: str = CRN,
) -> WindowMetrics:
    """The i-th hourly window of a deployment."""
    return WindowMetrics(
        crn,
        T0 + i * HOUR,
        T0 + (i + 1) * HOUR,
        predictions,
        labelled,
        accuracy,
        None if accuracy is None else accuracy - 0.05,
        None if accuracy is None else accuracy - 0.02,
        None if accuracy is None else accuracy - 0.03,
        {"tp": 10, "fp": 2, "tn": 30, "fn": 3},
        drift or {},
    )


def p_min(n: int = 100) -> MinLabelledPolicy:
    return MinLabelledPolicy(kind="min_labelled", min=n)


def p_abs(minimum: float = 0.8, metric: str = "accuracy") -> AbsolutePolicy:
    return AbsolutePolicy(kind="absolute", metric=metric, min=minimum)


def p_rel(max_drop: float = 0.1, baseline: str = "training", k: int = 3) -> RelativeDropPolicy:
    return RelativeDropPolicy(kind="relative_drop", max_drop=max_drop, baseline=baseline, baseline_windows=k)


def p_wilson(minimum: float = 0.75, confidence: float = 0.95) -> WilsonPolicy:
    return WilsonPolicy(kind="wilson", min=minimum, confidence=confidence)


def p_drift(max_psi: float = 0.25, action: str = "warn") -> DriftPolicy:
    return DriftPolicy(kind="drift", max_psi=max_psi, action=action)
