"""Threshold policy evaluators: one window in, one tidy PolicyResult per configured policy out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitoring.config.metric_registry import Direction, metric_spec
from monitoring.config.pipeline import (
    AbsolutePolicy,
    BoundPolicy,
    DriftPolicy,
    EstimatedPolicy,
    JointDriftPolicy,
    MinLabelledPolicy,
    RelativeDropPolicy,
    RelativeRisePolicy,
    SlicesPolicy,
    WilsonPolicy,
)
from monitoring.domain.decisions.policy_results import ACT, FAIL, INSUFFICIENT, PASS, PolicyResult, fmt_value
from monitoring.domain.metrics.bounds import breach_bound
from monitoring.domain.slices.judge import benjamini_hochberg, default_metrics, findings
from monitoring.domain.windows.bounds import wilson_interval
from monitoring.domain.windows.results import WindowMetrics, number_or_none

#: Float tolerance for "exactly at the threshold passes" (0.9 * 0.9 is 0.8100000000000001).
EPSILON = 1e-9


# -- evaluators ------------------------------------------------------------------------------
@dataclass
class _Context:
    baseline: Mapping[str, float] | None
    first_windows: Sequence[Any]
    min_labelled: int | None
    too_few_labels: bool


def _insufficient(name: str, kind: str, reason: str, value=None, threshold=None) -> PolicyResult:
    return PolicyResult(name, INSUFFICIENT, value, None, threshold, reason, kind)


def _metric_gate(w: WindowMetrics, metric: str, name: str, kind: str, ctx: _Context, threshold=None):
    """The insufficient result when the metric cannot be judged on this window, else None."""
    if ctx.too_few_labels:
        return _insufficient(
            name, kind, f"only {w.labelled} labelled of {ctx.min_labelled} required", threshold=threshold
        )
    if w.value(metric) is None:
        why = " (are the model's probabilities tracked?)" if metric_spec(metric).needs_probabilities else ""
        return _insufficient(
            name, kind, f"{metric} is undefined on this window ({w.labelled} labelled){why}", threshold=threshold
        )
    return None


def _min_labelled(w: WindowMetrics, p: MinLabelledPolicy, ctx: _Context) -> PolicyResult:
    name = f"min_labelled labelled >= {p.min}"
    if w.labelled < p.min:
        return PolicyResult(
            name,
            INSUFFICIENT,
            w.labelled,
            None,
            p.min,
            f"{w.labelled} labelled of {p.min} required: too few to judge",
            "min_labelled",
        )
    return PolicyResult(name, PASS, w.labelled, None, p.min, f"{w.labelled} labelled >= {p.min}", "min_labelled")


def _within(metric: str, value: float, limit: float) -> bool:
    """Whether ``value`` keeps to ``limit``: at or above a floor, at or below a ceiling (bias: its size)."""
    direction = metric_spec(metric).direction
    if direction is Direction.HIGHER:
        return value >= limit - EPSILON
    return (abs(value) if direction is Direction.ZERO else value) <= limit + EPSILON


def _compare(metric: str, ok: bool) -> str:
    """The sign between a value and its limit, for reasons."""
    floor = metric_spec(metric).direction is Direction.HIGHER
    return (">=" if ok else "<") if floor else ("<=" if ok else ">")


def _shown(metric: str) -> str:
    return f"|{metric}|" if metric_spec(metric).direction is Direction.ZERO else metric


def _absolute(w: WindowMetrics, p: AbsolutePolicy, ctx: _Context) -> PolicyResult:
    floor = p.min is not None
    name = f"absolute {_shown(p.metric)} {'>=' if floor else '<='} {fmt_value(p.limit)}"
    gate = _metric_gate(w, p.metric, name, "absolute", ctx, p.limit)
    if gate:
        return gate
    value = w.value(p.metric)
    ok = _within(p.metric, value, p.limit)
    text = f"{p.metric} {fmt_value(value)} {_compare(p.metric, ok)} {fmt_value(p.limit)}{w.rows_note(p.metric)}"
    return PolicyResult(name, PASS if ok else FAIL, value, None, p.limit, text, "absolute", metric=p.metric)


def _baseline_value(p: RelativeDropPolicy | RelativeRisePolicy, ctx: _Context) -> tuple[float | None, str]:
    if p.baseline == "training":
        value = number_or_none((ctx.baseline or {}).get(p.metric))
        return value, ("training holdout" if value is not None else f"no training baseline for {p.metric}")
    floor, usable = ctx.min_labelled or 1, []
    for w in ctx.first_windows:  # stop after K: the deployment's history may be long
        w = WindowMetrics.from_obj(w)
        if w.value(p.metric) is not None and w.labelled >= floor:
            usable.append(w.value(p.metric))
            if len(usable) == p.baseline_windows:
                break
    if len(usable) < p.baseline_windows:
        return None, f"baseline needs {p.baseline_windows} labelled windows, {len(usable)} so far"
    return sum(usable) / len(usable), f"mean of the first {p.baseline_windows} windows"


def _relative(w: WindowMetrics, p: RelativeDropPolicy | RelativeRisePolicy, ctx: _Context) -> PolicyResult:
    drop = isinstance(p, RelativeDropPolicy)
    change = p.max_drop if drop else p.max_rise
    kind = "relative_drop" if drop else "relative_rise"
    share = f"{1 - change:.0%}" if drop else f"{1 + change:.0%}"
    name = f"{kind} {p.metric} {'>=' if drop else '<='} {share} of {p.baseline} baseline"
    gate = _metric_gate(w, p.metric, name, kind, ctx)
    if gate:
        return gate
    value = w.value(p.metric)
    base, source = _baseline_value(p, ctx)
    if base is None:
        return _insufficient(name, kind, source, value=value)
    if drop:  # a negative baseline (R² below 0) falls further by growing in size
        limit = base * (1 - change) if base >= 0 else base * (1 + change)
    else:
        limit = base * (1 + change)
    ok = _within(p.metric, value, limit)
    text = (
        f"{p.metric} {fmt_value(value)} {_compare(p.metric, ok)} {fmt_value(limit)} "
        f"({change:.0%} {'below' if drop else 'above'} the {source} baseline {fmt_value(base)}){w.rows_note(p.metric)}"
    )
    return PolicyResult(name, PASS if ok else FAIL, value, base, limit, text, kind, metric=p.metric)


def _wilson(w: WindowMetrics, p: WilsonPolicy, ctx: _Context) -> PolicyResult:
    # Fail only when even the UPPER bound is below the minimum: we are then confident (at
    # p.confidence) that the true accuracy is below it. With few labels the interval is wide,
    # the upper bound stays high and the policy passes, so a tiny sample cannot trigger a redeploy.
    name = f"wilson {p.metric} upper bound ({p.confidence:.0%}) >= {fmt_value(p.min)}"
    gate = _metric_gate(w, p.metric, name, "wilson", ctx, p.min)
    if gate:
        return gate
    if w.labelled <= 0:
        return _insufficient(name, "wilson", "no labelled predictions", threshold=p.min)
    value = w.value(p.metric)
    successes = min(w.labelled, max(0, round(value * w.labelled)))
    low, high = wilson_interval(successes, w.labelled, p.confidence)
    ok = high >= p.min - EPSILON
    text = (
        f"{p.metric} {fmt_value(value)} over {w.labelled} labels, {p.confidence:.0%} interval "
        f"[{fmt_value(low)}, {fmt_value(high)}]: upper bound {'>=' if ok else '<'} {fmt_value(p.min)}"
    )
    return PolicyResult(name, PASS if ok else FAIL, value, high, p.min, text, "wilson", ACT, [low, high], p.metric)


def _bound(w: WindowMetrics, p: BoundPolicy, ctx: _Context) -> PolicyResult:
    # As wilson, for any metric: the side of the interval that needs evidence (the upper bound
    # of a quality metric, the lower bound of an error) must be past the limit to fail.
    floor = p.min is not None
    side = "upper" if floor else "lower"
    if metric_spec(p.metric).direction is Direction.ZERO:
        side = "smallest |value| in the"
    name = f"bound {p.metric} {side} bound ({p.confidence:.0%}) {'>=' if floor else '<='} {fmt_value(p.limit)}"
    gate = _metric_gate(w, p.metric, name, "bound", ctx, p.limit)
    if gate:
        return gate
    value = w.value(p.metric)
    interval = w.bound(p.metric, p.confidence)
    if interval is None:
        return _insufficient(
            name,
            "bound",
            f"no {p.confidence:.0%} bound of {p.metric} was computed for this window "
            "(compute_accuracy computes the bounds the policies name)",
            value=value,
            threshold=p.limit,
        )
    low, high = interval
    compared = float(breach_bound(p.metric, low, high))
    ok = _within(p.metric, compared, p.limit)
    text = (
        f"{p.metric} {fmt_value(value)} over {w.labelled} labels, {p.confidence:.0%} interval "
        f"[{fmt_value(low)}, {fmt_value(high)}]: {side} bound {_compare(p.metric, ok)} {fmt_value(p.limit)}"
        f"{w.rows_note(p.metric)}"
    )
    return PolicyResult(name, PASS if ok else FAIL, value, compared, p.limit, text, "bound", ACT, [low, high], p.metric)


def _drift(w: WindowMetrics, p: DriftPolicy, ctx: _Context) -> PolicyResult:
    limits = {"psi": p.max_psi, "ks": p.max_ks, "js": p.max_js}
    shown = ", ".join(f"{m} <= {fmt_value(v)}" for m, v in limits.items() if v is not None)
    name = f"drift {shown} ({p.action})"
    psis = {f: s.get("psi") for f, s in w.drift.items() if isinstance(s, Mapping) and s.get("psi") is not None}
    if not psis:
        return PolicyResult(
            name, INSUFFICIENT, None, None, p.max_psi, "no drift statistics for this window", "drift", p.action
        )
    worst = max(psis, key=lambda f: psis[f])
    over = {
        m: sorted(
            f for f, stats in w.drift.items() if (v := number_or_none(stats.get(m))) is not None and v > lim + EPSILON
        )
        for m, lim in limits.items()
        if lim is not None
    }
    failing = {m: fs for m, fs in over.items() if fs}
    if failing:
        parts = [
            f"{m.upper() if m != 'js' else 'JS distance'} above {fmt_value(limits[m])} for {', '.join(fs)}"
            for m, fs in failing.items()
        ]
        text = f"{'; '.join(parts)} (worst {worst} {fmt_value(psis[worst])})"
        return PolicyResult(name, FAIL, psis[worst], None, p.max_psi, text, "drift", p.action)
    text = f"max PSI {fmt_value(psis[worst])} ({worst}) <= {fmt_value(p.max_psi)}"
    return PolicyResult(name, PASS, psis[worst], None, p.max_psi, text, "drift", p.action)


def _estimated(w: WindowMetrics, p: EstimatedPolicy, ctx: _Context) -> PolicyResult:
    # Needs no label: the estimate is over the window's predictions. Its interval is shown, the
    # estimate itself is compared (an early warning is the point; the interval is chance only).
    floor = p.min is not None
    name = f"estimated {_shown(p.metric)} {'>=' if floor else '<='} {fmt_value(p.limit)} ({p.action})"
    item = w.estimate(p.metric)
    if item is None or int(item.get("rows") or 0) < p.min_rows:
        rows = 0 if item is None else int(item.get("rows") or 0)
        why = (
            f"{p.metric} estimated over {rows} rows, {p.min_rows} required"
            if item is not None
            else f"no estimate of {p.metric} for this window (does the model version have an estimation model?)"
        )
        return PolicyResult(name, INSUFFICIENT, None, None, p.limit, why, "estimated", p.action, metric=p.metric)
    value = float(item["value"])
    low, high = number_or_none(item.get("low")), number_or_none(item.get("high"))
    ok = _within(p.metric, value, p.limit)
    interval = [low, high] if low is not None and high is not None else None
    shown = f", 95% interval [{fmt_value(low)}, {fmt_value(high)}]" if interval else ""
    text = (
        f"estimated {p.metric} {fmt_value(value)} {_compare(p.metric, ok)} {fmt_value(p.limit)} "
        f"over {int(item['rows'])} predictions, before labels{shown}"
    )
    return PolicyResult(
        name, PASS if ok else FAIL, value, None, p.limit, text, "estimated", p.action, interval, p.metric
    )


def slice_findings(w: WindowMetrics, p: SlicesPolicy) -> list:
    """The window's slice findings under the policy, most significant first, flagged by Benjamini-Hochberg."""
    metrics = tuple(p.metrics) or default_metrics(w.slices)
    return benjamini_hochberg(findings(w.slices, metrics, None, p.tolerance), p.fdr)


def _slices(w: WindowMetrics, p: SlicesPolicy, ctx: _Context) -> PolicyResult:
    name = f"slices worse than at training (FDR {fmt_value(p.fdr)}, tolerance {fmt_value(p.tolerance)}) ({p.action})"
    found = slice_findings(w, p)
    if not found:
        why = "no slice with enough labelled rows in this window and at training"
        return PolicyResult(name, INSUFFICIENT, None, None, None, why, "slices", p.action)
    flagged = [f for f in found if f.flagged]
    if not flagged:
        text = f"{len(found)} slice metrics judged, none worse than at training (lowest q {fmt_value(found[0].q)})"
        return PolicyResult(name, PASS, found[0].value, found[0].reference, None, text, "slices", p.action)
    worst = flagged[0]
    text = (
        f"{len(flagged)} of {len(found)} slice metrics worse than at training: "
        + "; ".join(f.text() for f in flagged[:3])
        + (f"; +{len(flagged) - 3} more" if len(flagged) > 3 else "")
    )
    return PolicyResult(name, FAIL, worst.value, None, worst.reference, text, "slices", p.action, metric=worst.metric)


def _joint_drift(w: WindowMetrics, p: JointDriftPolicy, ctx: _Context) -> PolicyResult:
    name = f"joint_drift domain classifier AUROC lower bound <= {fmt_value(p.max_auc)} ({p.action})"
    item = w.joint_drift or {}
    auc, low, high = (number_or_none(item.get(k)) for k in ("auc", "low", "high"))
    if auc is None or low is None:
        why = "no joint drift for this window (too few rows, or no reference sample in the model version)"
        return PolicyResult(name, INSUFFICIENT, None, None, p.max_auc, why, "joint_drift", p.action)
    ok = low <= p.max_auc + EPSILON
    drivers = ", ".join(f"{f} {share:.0%}" for f, share in item.get("drivers") or [])
    text = (
        f"AUROC {fmt_value(auc)} [{fmt_value(low)}, {fmt_value(high)}] telling the window from the training rows: "
        f"lower bound {'<=' if ok else '>'} {fmt_value(p.max_auc)}"
        + (f" (driven by {drivers})" if not ok and drivers else "")
    )
    return PolicyResult(name, PASS if ok else FAIL, auc, low, p.max_auc, text, "joint_drift", p.action, [low, high])


EVALUATORS: dict[type, Callable[[WindowMetrics, Any, _Context], PolicyResult]] = {
    MinLabelledPolicy: _min_labelled,
    AbsolutePolicy: _absolute,
    RelativeDropPolicy: _relative,
    RelativeRisePolicy: _relative,
    WilsonPolicy: _wilson,
    BoundPolicy: _bound,
    DriftPolicy: _drift,
    EstimatedPolicy: _estimated,
    SlicesPolicy: _slices,
    JointDriftPolicy: _joint_drift,
}


def evaluate_window(
    window: Any, policies: Iterable[Any], baseline: Mapping[str, float] | None = None, first_windows: Sequence[Any] = ()
) -> list[PolicyResult]:
    """Evaluate every policy on one window.

    Args:
        window: a WindowMetrics (or anything ``WindowMetrics.from_obj`` accepts).
        policies: policy objects from ``ThresholdConfig.policies``.
        baseline: training holdout metrics (``{"accuracy": 0.9, ...}``) for relative_drop.
        first_windows: the deployment's windows ordered by start, for first_windows baselines.
    Returns:
        one PolicyResult per policy, in the order given. When a min_labelled policy is not met,
        every label-based policy on the window is "insufficient" too.
    Raises:
        TypeError: a policy of a kind with no evaluator.
    """
    w = WindowMetrics.from_obj(window)
    policies = list(policies)
    mins = [p.min for p in policies if isinstance(p, MinLabelledPolicy)]
    min_labelled = max(mins) if mins else None
    ctx = _Context(baseline, first_windows, min_labelled, min_labelled is not None and w.labelled < min_labelled)
    results = []
    for p in policies:
        evaluator = EVALUATORS.get(type(p))
        if evaluator is None:
            raise TypeError(f"no evaluator for threshold policy {p!r}")
        results.append(evaluator(w, p, ctx))
    return results
