"""Each slice's metrics against the same slice at training, one-sided tests, and Benjamini-Hochberg across them.

A slice is flagged when its metric is worse than its reference by more than a tolerance with a
false discovery rate of ``fdr`` across every slice and metric judged in the window: with many
slices, a few would cross any fixed p-value limit by chance; the Benjamini-Hochberg step-up keeps
the expected share of false flags among those raised at ``fdr``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from monitoring.domain.slices.stats import SLICE_METRICS, mean_and_variance


@dataclass(frozen=True)
class Finding:
    """One slice and metric: its value in the window and at training, the test's p-value, BH's q-value."""

    slice: str
    metric: str
    value: float
    reference: float
    labelled: int
    p: float
    q: float = 1.0
    flagged: bool = False

    def text(self) -> str:
        return f"{self.slice} {self.metric} {self.value:.3g} vs {self.reference:.3g} at training (q {self.q:.2g})"

    def to_dict(self) -> dict:
        return asdict(self)


def _phi(z: float) -> float:
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def _share_p(k_ref: float, n_ref: float, k: float, n: float, tolerance: float) -> float:
    """One-sided p-value of "the share fell by more than ``tolerance``" (two-proportion z, pooled variance)."""
    p_ref, p_now = k_ref / n_ref, k / n
    pooled = (k_ref + k) / (n_ref + n)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_ref + 1 / n))
    if se == 0:
        return 1.0 if p_now >= p_ref - tolerance else 0.0
    return _phi((p_now - (p_ref - tolerance)) / se)


def _mean_p(ref: Mapping[str, float], now: Mapping[str, float], tolerance: float) -> float:
    """One-sided p-value of "the mean |error| rose by more than ``tolerance`` of it" (Welch's z)."""
    m_ref, v_ref = mean_and_variance(ref)
    m_now, v_now = mean_and_variance(now)
    se = math.sqrt(v_ref / ref["labelled"] + v_now / now["labelled"])
    limit = m_ref * (1 + tolerance)
    if se == 0:
        return 1.0 if m_now <= limit else 0.0
    return _phi(-(m_now - limit) / se)


def findings(
    slices: Mapping[str, Mapping], metrics: Sequence[str], min_rows: int | None, tolerance: float
) -> list[Finding]:
    """A finding per slice and metric that both the window and the reference define on ``min_rows`` labelled
    rows (None: each slice's own ``min_rows``, the config's when the window was computed)."""
    out = []
    for name, item in slices.items():
        now, ref = item.get("stats") or {}, item.get("ref") or {}
        least = min_rows if min_rows is not None else int(item.get("min_rows") or 1)
        if now.get("labelled", 0) < least or ref.get("labelled", 0) < least:
            continue
        for metric in metrics:
            counts = SLICE_METRICS.get(metric, ())
            if counts is None:
                if "abs_sum" not in now or "abs_sum" not in ref:
                    continue
                value, reference = now["abs_sum"] / now["labelled"], ref["abs_sum"] / ref["labelled"]
                p = _mean_p(ref, now, tolerance)
            else:
                if not counts or not now.get(counts[1]) or not ref.get(counts[1]):
                    continue
                value, reference = now[counts[0]] / now[counts[1]], ref[counts[0]] / ref[counts[1]]
                p = _share_p(ref[counts[0]], ref[counts[1]], now[counts[0]], now[counts[1]], tolerance)
            out.append(Finding(name, metric, value, reference, int(now["labelled"]), p))
    return out


def benjamini_hochberg(found: Sequence[Finding], fdr: float) -> list[Finding]:
    """The findings with their q-values and flags, most significant first."""
    ordered = sorted(found, key=lambda f: (f.p, f.slice, f.metric))
    m = len(ordered)
    q, running = [0.0] * m, 1.0
    for i in range(m - 1, -1, -1):  # step-up: q_i = min over j >= i of p_j * m / j
        running = min(running, ordered[i].p * m / (i + 1))
        q[i] = running
    return [
        Finding(f.slice, f.metric, f.value, f.reference, f.labelled, f.p, q[i], q[i] <= fdr)
        for i, f in enumerate(ordered)
    ]


def default_metrics(slices: Mapping[str, Mapping]) -> tuple[str, ...]:
    """Accuracy for a classifier's slices, MAE for a regressor's."""
    regressor = any("abs_sum" in (item.get("stats") or {}) for item in slices.values())
    return ("mae",) if regressor else ("accuracy",)
