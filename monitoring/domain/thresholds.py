"""Threshold policy evaluators: one window in, one tidy PolicyResult per configured policy out."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from monitoring.core.config import AbsolutePolicy, DriftPolicy, MinLabelledPolicy, RelativeDropPolicy, WilsonPolicy
from monitoring.domain.window_metrics import WindowMetrics, number_or_none
from monitoring.domain.windows import wilson_interval

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient"
ACT, WARN = "act", "warn"
#: Kinds whose verdict needs labelled data; they decide whether a window is evaluable at all.
LABEL_KINDS = frozenset({"absolute", "relative_drop", "wilson", "min_labelled"})
#: Float tolerance for "exactly at the threshold passes" (0.9 * 0.9 is 0.8100000000000001).
EPSILON = 1e-9


@dataclass
class PolicyResult:
    """The verdict of one policy on one window.

    ``value`` is what was measured; ``threshold`` the limit it was compared with (for
    relative_drop: baseline * (1 - max_drop)); ``bound`` the statistic actually compared
    when it is not ``value`` (Wilson: the upper bound; relative_drop: the baseline);
    ``interval`` the Wilson (low, high). ``action`` is "warn" for drift policies that only
    report, else "act".
    """

    policy: str
    status: str
    value: float | None
    bound: float | None
    threshold: float | None
    reason: str
    kind: str = ""
    action: str = ACT
    interval: list[float] | None = None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping) -> PolicyResult:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


# -- evaluators ------------------------------------------------------------------------------
@dataclass
class _Context:
    baseline: Mapping[str, float] | None
    first_windows: Sequence[Any]
    min_labelled: int | None
    too_few_labels: bool


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def _insufficient(name: str, kind: str, reason: str, value=None, threshold=None) -> PolicyResult:
    return PolicyResult(name, INSUFFICIENT, value, None, threshold, reason, kind)


def _metric_gate(w: WindowMetrics, metric: str, name: str, kind: str, ctx: _Context, threshold=None):
    """The insufficient result when the metric cannot be judged on this window, else None."""
    if ctx.too_few_labels:
        return _insufficient(
            name, kind, f"only {w.labelled} labelled of {ctx.min_labelled} required", threshold=threshold
        )
    if getattr(w, metric) is None:
        return _insufficient(
            name, kind, f"{metric} is undefined on this window ({w.labelled} labelled)", threshold=threshold
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


def _absolute(w: WindowMetrics, p: AbsolutePolicy, ctx: _Context) -> PolicyResult:
    name = f"absolute {p.metric} >= {p.min:g}"
    gate = _metric_gate(w, p.metric, name, "absolute", ctx, p.min)
    if gate:
        return gate
    value = getattr(w, p.metric)
    ok = value >= p.min - EPSILON
    sign = ">=" if ok else "<"
    return PolicyResult(
        name, PASS if ok else FAIL, value, None, p.min, f"{p.metric} {_fmt(value)} {sign} {p.min:g}", "absolute"
    )


def _baseline_value(p: RelativeDropPolicy, ctx: _Context) -> tuple[float | None, str]:
    if p.baseline == "training":
        value = number_or_none((ctx.baseline or {}).get(p.metric))
        return value, ("training holdout" if value is not None else f"no training baseline for {p.metric}")
    floor, usable = ctx.min_labelled or 1, []
    for w in ctx.first_windows:  # stop after K: the deployment's history may be long
        w = WindowMetrics.from_obj(w)
        if getattr(w, p.metric) is not None and w.labelled >= floor:
            usable.append(getattr(w, p.metric))
            if len(usable) == p.baseline_windows:
                break
    if len(usable) < p.baseline_windows:
        return None, f"baseline needs {p.baseline_windows} labelled windows, {len(usable)} so far"
    return sum(usable) / len(usable), f"mean of the first {p.baseline_windows} windows"


def _relative_drop(w: WindowMetrics, p: RelativeDropPolicy, ctx: _Context) -> PolicyResult:
    name = f"relative_drop {p.metric} >= {1 - p.max_drop:.0%} of {p.baseline} baseline"
    gate = _metric_gate(w, p.metric, name, "relative_drop", ctx)
    if gate:
        return gate
    value = getattr(w, p.metric)
    base, source = _baseline_value(p, ctx)
    if base is None:
        return _insufficient(name, "relative_drop", source, value=value)
    limit = base * (1 - p.max_drop)
    ok = value >= limit - EPSILON
    text = (
        f"{p.metric} {_fmt(value)} {'>=' if ok else '<'} {_fmt(limit)} "
        f"({p.max_drop:.0%} below the {source} baseline {_fmt(base)})"
    )
    return PolicyResult(name, PASS if ok else FAIL, value, base, limit, text, "relative_drop")


def _wilson(w: WindowMetrics, p: WilsonPolicy, ctx: _Context) -> PolicyResult:
    # Fail only when even the UPPER bound is below the minimum: we are then confident (at
    # p.confidence) that the true accuracy is below it. With few labels the interval is wide,
    # the upper bound stays high and the policy passes, so a tiny sample cannot trigger a redeploy.
    name = f"wilson {p.metric} upper bound ({p.confidence:.0%}) >= {p.min:g}"
    gate = _metric_gate(w, p.metric, name, "wilson", ctx, p.min)
    if gate:
        return gate
    if w.labelled <= 0:
        return _insufficient(name, "wilson", "no labelled predictions", threshold=p.min)
    value = getattr(w, p.metric)
    successes = min(w.labelled, max(0, round(value * w.labelled)))
    low, high = wilson_interval(successes, w.labelled, p.confidence)
    ok = high >= p.min - EPSILON
    text = (
        f"{p.metric} {_fmt(value)} over {w.labelled} labels, {p.confidence:.0%} interval "
        f"[{_fmt(low)}, {_fmt(high)}]: upper bound {'>=' if ok else '<'} {p.min:g}"
    )
    return PolicyResult(name, PASS if ok else FAIL, value, high, p.min, text, "wilson", ACT, [low, high])


def _drift(w: WindowMetrics, p: DriftPolicy, ctx: _Context) -> PolicyResult:
    name = f"drift psi <= {p.max_psi:g} ({p.action})"
    psis = {f: s.get("psi") for f, s in w.drift.items() if isinstance(s, Mapping) and s.get("psi") is not None}
    if not psis:
        return PolicyResult(
            name, INSUFFICIENT, None, None, p.max_psi, "no drift statistics for this window", "drift", p.action
        )
    worst = max(psis, key=lambda f: psis[f])
    over = sorted(f for f, v in psis.items() if v > p.max_psi + EPSILON)
    if over:
        text = f"PSI above {p.max_psi:g} for {', '.join(over)} (worst {worst} {_fmt(psis[worst])})"
        return PolicyResult(name, FAIL, psis[worst], None, p.max_psi, text, "drift", p.action)
    text = f"max PSI {_fmt(psis[worst])} ({worst}) <= {p.max_psi:g}"
    return PolicyResult(name, PASS, psis[worst], None, p.max_psi, text, "drift", p.action)


EVALUATORS: dict[type, Callable[[WindowMetrics, Any, _Context], PolicyResult]] = {
    MinLabelledPolicy: _min_labelled,
    AbsolutePolicy: _absolute,
    RelativeDropPolicy: _relative_drop,
    WilsonPolicy: _wilson,
    DriftPolicy: _drift,
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


def is_evaluable(results: Sequence[PolicyResult]) -> bool:
    """Whether a window can be judged: label-based policies (when any) decide; drift alone otherwise.

    Args:
        results: the window's results from ``evaluate_window``.
    Returns:
        False when min_labelled is unmet or every relevant result is "insufficient".
    """
    labelled = [r for r in results if r.kind in LABEL_KINDS]
    if any(r.kind == "min_labelled" and r.status == INSUFFICIENT for r in labelled):
        return False
    relevant = labelled or list(results)
    return any(r.status != INSUFFICIENT for r in relevant)


def is_breach(results: Sequence[PolicyResult]) -> bool:
    """Any failing policy whose action is "act" (drift warn never counts)."""
    return any(r.status == FAIL and r.action == ACT for r in results)
