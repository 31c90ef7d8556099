"""What the dashboard shows of a model, read from the state store and the config: metric, bounds, coverage, drift.

Nothing here is tied to one metric: the metric is the one the threshold policies judge (else
the task's first), its direction comes from the metric registry, its per-window bounds from the
stored window (when stored) or from its proportion (Wilson), its thresholds from the config
and, for limits relative to a baseline, from the latest decision. Downsampling for display:
up to ``max_points`` windows are drawn one by one; more are grouped into equal-time buckets
whose point is the labelled-weighted mean, whose band spans the lowest lower and the highest
upper bound in the bucket, and whose worst window is drawn as well.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from monitoring.config.metric_registry import WILSON, Direction, headline_metric, metric_spec
from monitoring.config.pipeline import PipelineConfig
from monitoring.domain.windows.headline import policy_metric
from monitoring.domain.windows.results import bound_key
from monitoring.state.history import WindowRow

DEFAULT_CONFIDENCE = 0.95
#: Most columns of the drift heatmap (more windows are grouped, each cell the bucket's worst PSI).
HEATMAP_COLUMNS = 120
#: Limits relative to a baseline: their value is known only from a decision's result.
RELATIVE_KINDS = ("relative_drop", "relative_rise")


@dataclass(frozen=True)
class MetricInfo:
    """The metric a model is judged on, and the limits the config sets on it."""

    name: str
    direction: str
    description: str
    confidence: float
    thresholds: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def number(value: float | None, digits: int = 4) -> str:
    """A number for people: 4 significant digits, whole numbers from 10,000 on (an MAE of 38,000
    reads better than 3.8e+04), ``-`` for none."""
    if value is None:
        return "-"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def shown_metric(cfg: PipelineConfig) -> str:
    """The metric the dashboard shows: the one the policies judge (the first policy naming one), else
    the one retraining judges by, else the task's headline."""
    return headline_metric(cfg.model.task, policy_metric(cfg.thresholds.policies) or cfg.retraining.metric)


def _limit(policy: Any) -> float | None:
    for name in ("limit", "min", "max"):
        value = getattr(policy, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def metric_info(cfg: PipelineConfig, latest_results: Iterable[Any] = ()) -> MetricInfo:
    """The judged metric, its direction, the confidence of its bounds and every limit set on it.

    Args:
        latest_results: the latest decision's policy results (limits relative to a baseline).
    """
    name = shown_metric(cfg)
    spec = metric_spec(name)
    confidence, thresholds = None, []
    results = list(latest_results)
    for policy in cfg.thresholds.policies:
        if getattr(policy, "metric", None) != name:
            continue
        kind = getattr(policy, "kind", type(policy).__name__)
        confidence = confidence or getattr(policy, "confidence", None)
        value = _limit(policy) if kind not in RELATIVE_KINDS else None
        if kind in RELATIVE_KINDS:
            found = next((r for r in results if r.kind == kind and r.threshold is not None), None)
            value = None if found is None else float(found.threshold)
        thresholds.append({"policy": kind, "value": value})
    return MetricInfo(name, spec.direction.value, spec.description, float(confidence or DEFAULT_CONFIDENCE), thresholds)


@dataclass(slots=True)
class WindowPoint:
    """One stored window as the dashboard shows it."""

    deployment_crn: str
    version: str | None
    start_ms: int
    end_ms: int
    predictions: int
    labelled: int
    coverage: float | None
    value: float | None
    low: float | None
    high: float | None
    drift: Mapping[str, Mapping[str, float | None]]
    zero_targets: int | None = None
    """A regressor's labelled rows with target 0, which MAPE leaves out (None: not known)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def wilson_bounds(values: np.ndarray, labelled: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Wilson intervals of many proportions at once, as ``windows.bounds.wilson_interval`` computes one
    (successes = the value times the labelled count, rounded); NaN where there is no value or label."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    n = labelled.astype(np.float64)
    ok = ~np.isnan(values) & (n > 0)
    safe_n = np.where(ok, n, 1.0)
    p = np.clip(np.round(np.where(ok, values, 0.0) * safe_n), 0, safe_n) / safe_n
    z2n = z * z / safe_n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * np.sqrt(p * (1 - p) / safe_n + z2n / (4 * safe_n)) / (1 + z2n)
    low, high = np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)
    return np.where(ok, low, math.nan), np.where(ok, high, math.nan)


def _stored(row: WindowRow, key: str) -> tuple[float | None, float | None]:
    item = row.bounds.get(key) if row.bounds else None
    if not isinstance(item, Mapping):
        return None, None
    low, high = item.get("low"), item.get("high")
    return (None, None) if low is None or high is None else (float(low), float(high))


def window_points(
    rows: Sequence[WindowRow], metric: str, confidence: float, versions: Mapping[str, str | None]
) -> list[WindowPoint]:
    """The windows with the metric's value and bounds, coverage and the version that served them.

    Bounds: the window's stored ones at ``confidence`` when kept, else (for a proportion) Wilson's.
    """
    values = _nan(r.value for r in rows)
    labelled = np.array([r.labelled for r in rows], dtype=np.int64)
    if metric_spec(metric).bound == WILSON:
        lows, highs = wilson_bounds(values, labelled, confidence)
    else:
        lows = highs = np.full(len(rows), math.nan)
    key = bound_key(metric, confidence)
    out = []
    for i, r in enumerate(rows):
        low, high = _stored(r, key)
        if low is None:
            low, high = _num(lows[i]), _num(highs[i])
        out.append(
            WindowPoint(
                r.deployment_crn,
                versions.get(r.deployment_crn),
                r.start_ms,
                r.end_ms,
                r.predictions,
                r.labelled,
                (r.labelled / r.predictions) if r.predictions else None,
                r.value,
                low,
                high,
                r.drift,
                r.zero_targets,
            )
        )
    return out


@dataclass(slots=True)
class Bucket:
    """Consecutive windows drawn as one point (one window when there are few)."""

    start_ms: int
    end_ms: int
    windows: int
    value: float | None
    worst: float | None
    low: float | None
    high: float | None
    predictions: int
    labelled: int
    coverage: float | None
    version: str | None


def _nan(values: Iterable[float | None]) -> np.ndarray:
    return np.array([math.nan if v is None else v for v in values], dtype=np.float64)


def _num(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _groups(points: Sequence[WindowPoint], since_ms: int, until_ms: int, most: int) -> np.ndarray:
    """The bucket index of each point: one per point when few, else equal-time buckets over the range."""
    if len(points) <= most:
        return np.arange(len(points))
    starts = np.array([p.start_ms for p in points], dtype=np.int64)
    width = max(1, -(-(until_ms - since_ms) // most))
    raw = np.clip((starts - since_ms) // width, 0, most - 1)
    _, index = np.unique(raw, return_inverse=True)
    return index


def downsample(points: Sequence[WindowPoint], since_ms: int, until_ms: int, most: int, direction: str) -> list[Bucket]:
    """At most ``most`` buckets of consecutive windows (the module docstring says how they are drawn)."""
    if not points:
        return []
    group = _groups(points, since_ms, until_ms, most)
    n = int(group.max()) + 1
    value, low, high = _nan(p.value for p in points), _nan(p.low for p in points), _nan(p.high for p in points)
    labelled = np.array([p.labelled for p in points], dtype=np.float64)
    predictions = np.array([p.predictions for p in points], dtype=np.float64)
    has = ~np.isnan(value)
    weight = np.where(has, np.maximum(labelled, 1.0), 0.0)
    total = np.bincount(group, weights=weight, minlength=n)
    mean = np.divide(
        np.bincount(group, weights=np.where(has, value, 0.0) * weight, minlength=n),
        total,
        out=np.full(n, math.nan),
        where=total > 0,
    )
    worse_low = direction == Direction.HIGHER.value  # bias (ZERO) has no worse side: its largest is shown
    fill = np.inf if worse_low else -np.inf
    worst = np.full(n, fill)
    (np.fmin if worse_low else np.fmax).at(worst, group, np.where(has, value, fill))
    worst = np.where(np.isfinite(worst), worst, math.nan)
    lows, highs = np.full(n, math.inf), np.full(n, -math.inf)
    np.fmin.at(lows, group, np.where(np.isnan(low), np.inf, low))
    np.fmax.at(highs, group, np.where(np.isnan(high), -np.inf, high))
    pred = np.bincount(group, weights=predictions, minlength=n)
    lab = np.bincount(group, weights=labelled, minlength=n)
    first = np.full(n, len(points))
    np.minimum.at(first, group, np.arange(len(points)))
    last = np.zeros(n, dtype=np.int64)
    np.maximum.at(last, group, np.arange(len(points)))
    count = np.bincount(group, minlength=n)
    single = count == 1
    mean[single] = value[first[single]]  # one window: its own value, exactly
    return [
        Bucket(
            points[first[b]].start_ms,
            points[last[b]].end_ms,
            int(count[b]),
            _num(mean[b]),
            _num(worst[b]),
            float(lows[b]) if np.isfinite(lows[b]) else None,
            float(highs[b]) if np.isfinite(highs[b]) else None,
            int(pred[b]),
            int(lab[b]),
            float(lab[b] / pred[b]) if pred[b] else None,
            points[last[b]].version,
        )
        for b in range(n)
    ]


@dataclass(frozen=True)
class DriftGrid:
    """Per-feature drift over time: ``cells[f][c]`` is the worst PSI of feature ``f`` in column ``c``."""

    features: list[str]
    kinds: list[str]
    columns: list[tuple[int, int]]
    cells: list[list[float | None]]


def drift_grid(points: Sequence[WindowPoint], cfg: PipelineConfig, since_ms: int, until_ms: int) -> DriftGrid:
    """The heatmap's data: configured features first (then any other the windows hold), kind from the spec."""
    configured = list(getattr(cfg.model, "feature_names", None) or cfg.model.features)
    configured = [f if isinstance(f, str) else f.name for f in configured]
    seen = dict.fromkeys(configured)
    for p in points:
        seen.update(dict.fromkeys(p.drift))
    features = [f for f in seen if any(f in p.drift for p in points)] or configured
    kinds_map = dict(getattr(cfg.model, "kinds", None) or {})
    kinds = [str(getattr(kinds_map.get(f), "value", kinds_map.get(f)) or "numeric") for f in features]
    if not points:
        return DriftGrid(features, kinds, [], [[] for _ in features])
    group = _groups(points, since_ms, until_ms, HEATMAP_COLUMNS)
    n = int(group.max()) + 1
    psi = np.full((len(features), len(points)), -np.inf)
    for j, p in enumerate(points):
        for i, f in enumerate(features):
            stats = p.drift.get(f)
            value = stats.get("psi") if stats else None
            if value is not None:
                psi[i, j] = value
    cells = np.full((len(features), n), -np.inf)
    for i in range(len(features)):
        np.fmax.at(cells[i], group, psi[i])
    first = np.full(n, len(points))
    np.minimum.at(first, group, np.arange(len(points)))
    last = np.zeros(n, dtype=np.int64)
    np.maximum.at(last, group, np.arange(len(points)))
    columns = [(points[first[c]].start_ms, points[last[c]].end_ms) for c in range(n)]
    return DriftGrid(
        features,
        kinds,
        columns,
        [[float(v) if np.isfinite(v) else None for v in row] for row in cells],
    )
