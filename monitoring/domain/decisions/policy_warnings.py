"""Warn-only policies that failed on a window, one line each, ranked by how far past their limit."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from monitoring.config.pipeline import DriftPolicy
from monitoring.domain.decisions.policy_results import FAIL, WARN, PolicyResult, fmt_value
from monitoring.domain.decisions.thresholds import EPSILON, slice_findings
from monitoring.domain.windows.results import WindowMetrics, number_or_none

#: Warnings a VERDICT line names; the others are counted ("+2 more").
SHOWN = 3
#: The drift statistics a drift policy limits, with the policy field of each limit.
DRIFT_LIMITS = (("psi", "max_psi"), ("ks", "max_ks"), ("js", "max_js"))


@dataclass(frozen=True)
class PolicyWarning:
    """One failed warn-only check.

    ``subject`` is the feature (drift) or the policy's metric; ``statistic`` what was compared
    (``psi``, ``ks``, ``js`` or the metric); ``severity`` how far past the limit it is, as a
    multiple of the limit (PSI 1.4 against 0.25 is 5.6): the ranking key.
    """

    policy: str
    subject: str
    statistic: str
    value: float
    limit: float
    severity: float

    def text(self) -> str:
        """``"Contract psi 1.4 > 0.25 (5.6x)"``."""
        return (
            f"{self.subject} {self.statistic} {fmt_value(self.value)} {'<' if self.value < self.limit else '>'} "
            f"{fmt_value(self.limit)} ({self.severity:.2g}x)"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyWarning:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__})


def _ratio(value: float, limit: float) -> float:
    return value / limit if limit > 0 else math.inf


def _drift(w: WindowMetrics, p: DriftPolicy, result: PolicyResult) -> list[PolicyWarning]:
    """Each feature past one of the policy's limits, by its worst statistic."""
    out = []
    for feature, stats in w.drift.items():
        over = [
            PolicyWarning(result.policy, feature, stat, value, limit, _ratio(value, limit))
            for stat, attr in DRIFT_LIMITS
            if (limit := getattr(p, attr)) is not None
            and (value := number_or_none(stats.get(stat))) is not None
            and value > limit + EPSILON
        ]
        if over:
            out.append(max(over, key=lambda x: x.severity))
    return out


def _other(result: PolicyResult) -> list[PolicyWarning]:
    """A warn-only result of any other kind: its value against its threshold (an estimate's subject is ``estimated``)."""
    if result.value is None or result.threshold is None:
        return []
    value, limit = float(result.value), float(result.threshold)
    severity = abs(value - limit) / abs(limit) + 1 if limit else math.inf
    subject = "estimated" if result.kind == "estimated" else result.metric or result.kind
    return [PolicyWarning(result.policy, subject, result.metric or result.kind, value, limit, severity)]


def _slices(w: WindowMetrics, p: Any, result: PolicyResult) -> list[PolicyWarning]:
    """Each flagged slice: its metric against the same slice at training (severity: how far worse, as ``_other``)."""
    return [
        PolicyWarning(
            result.policy,
            f.slice,
            f.metric,
            f.value,
            f.reference,
            abs(f.value - f.reference) / abs(f.reference) + 1 if f.reference else math.inf,
        )
        for f in slice_findings(w, p)
        if f.flagged
    ]


def ranked_warnings(window: Any, policies: Sequence[Any], results: Sequence[PolicyResult]) -> list[PolicyWarning]:
    """The failed warn-only checks of one window, most severe first (a feature once, at its worst).

    Args:
        window: the window the results are of (``WindowMetrics`` or compatible).
        policies: the policies, in the order ``evaluate_window`` was given them.
        results: ``evaluate_window``'s results for that window (one per policy, same order).
    """
    w = WindowMetrics.from_obj(window)
    found: dict[tuple[str, str], PolicyWarning] = {}
    for policy, result in zip(policies, results):
        if result.status != FAIL or result.action != WARN:
            continue
        if isinstance(policy, DriftPolicy):
            items = _drift(w, policy, result)
        elif result.kind == "slices":
            items = _slices(w, policy, result)
        else:
            items = _other(result)
        for item in items:
            key = (item.subject, item.statistic if not isinstance(policy, DriftPolicy) else "drift")
            if key not in found or item.severity > found[key].severity:
                found[key] = item
    return sorted(found.values(), key=lambda x: (-x.severity, x.subject))


def warnings_text(warnings: Iterable[PolicyWarning], shown: int = SHOWN) -> str | None:
    """The first ``shown`` warnings and how many more: ``"a (5.6x); b (1.2x); +2 more"``; None when there are none."""
    items = list(warnings)
    if not items:
        return None
    text = "; ".join(w.text() for w in items[:shown])
    return text + (f"; +{len(items) - shown} more" if len(items) > shown else "")
