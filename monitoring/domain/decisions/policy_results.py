"""What a threshold policy says of one window (PolicyResult), and what a window's results add up to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient"
ACT, WARN = "act", "warn"
#: Kinds whose verdict needs labelled data; they decide whether a window is evaluable at all.
LABEL_KINDS = frozenset({"absolute", "relative_drop", "relative_rise", "wilson", "bound", "min_labelled"})


@dataclass
class PolicyResult:
    """The verdict of one policy on one window.

    ``value`` is what was measured; ``threshold`` the limit it was compared with (a floor
    for quality metrics, a ceiling for error metrics; for relative_drop: baseline *
    (1 - max_drop), relative_rise: baseline * (1 + max_rise)); ``bound`` the statistic
    actually compared when it is not ``value`` (Wilson and bound: the side of the interval
    that must clear the limit; relative kinds: the baseline); ``interval`` the confidence
    (low, high). ``metric`` names the metric judged (empty for min_labelled and drift).
    ``action`` is "warn" for drift policies that only report, else "act".
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
    metric: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PolicyResult:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})


def fmt_value(x: float | None) -> str:
    """A metric value for people: 4 significant digits, large ones in full with thousands separators
    (an MAE of ``61,250.5``, not ``6.125e+04``)."""
    if x is None:
        return "n/a"
    if abs(x) >= 10_000:
        return f"{x:,.1f}".removesuffix(".0")
    return f"{x:.4g}"


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
