"""Confidence bounds of the metrics of each window: what a policy or the report asks for, seeded per window."""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from monitoring.config.metric_registry import WILSON, metric_spec
from monitoring.domain.metrics import bounds as metric_bounds
from monitoring.domain.records.columns import Columns
from monitoring.domain.windows.groups import Groups, class_rows, proba_rows
from monitoring.domain.windows.results import bound_key


@dataclass(frozen=True)
class BoundRequest:
    """A metric whose confidence bounds a policy or the report needs, at a two-sided level."""

    metric: str
    confidence: float = metric_bounds.DEFAULT_CONFIDENCE


def window_bounds(
    columns: Columns,
    groups: Groups,
    values: dict[str, np.ndarray],
    confusion: np.ndarray | None,
    requests: Sequence[BoundRequest],
    seed: int,
    resamples: int,
) -> list[dict[str, dict]]:
    """Per group, ``{bound_key(metric, confidence): {"low", "high", "method"}}`` of each defined metric asked for.

    Wilson intervals come from the confusion matrices at once; t and bootstrap bounds from each
    window's rows, a bootstrap drawn by a generator seeded with the seed, the deployment and
    the window (so a window's bounds do not depend on which others were computed with it).
    """
    out: list[dict[str, dict]] = [{} for _ in range(groups.n)]
    task = "classification" if columns.is_classifier else "regression"
    n_classes = len(columns.classes)
    for request in dict.fromkeys(requests):
        spec = metric_spec(request.metric)
        metric = values.get(request.metric)
        if spec.task != task or metric is None:
            continue
        method = spec.bound_method(n_classes)
        if method == WILSON:
            wilson = metric_bounds.confusion_wilson(request.metric, confusion, columns.positive, request.confidence)
            pairs = list(zip(wilson.low.tolist(), wilson.high.tolist()))
        else:
            pairs = [
                _window_bound(columns, groups, g, request, seed, resamples) if not math.isnan(metric[g]) else None
                for g in range(groups.n)
            ]
        for g, pair in enumerate(pairs):
            if pair is not None and not math.isnan(metric[g]):
                out[g][bound_key(request.metric, request.confidence)] = {
                    "low": pair[0],
                    "high": pair[1],
                    "method": method,
                }
    return out


def _window_bound(
    columns: Columns, groups: Groups, g: int, request: BoundRequest, seed: int, resamples: int
) -> tuple[float, float]:
    rows = groups.rows(g)
    rng = np.random.default_rng([seed, zlib.crc32(groups.crns[g].encode()), groups.starts[g]])
    kw = dict(confidence=request.confidence, rng=rng, resamples=resamples)
    if columns.is_classifier:
        y_pred, y_true = class_rows(columns, rows)
        b = metric_bounds.classification_bounds(
            request.metric, y_true, y_pred, len(columns.classes), columns.positive, proba_rows(columns, rows), **kw
        )
    else:
        b = metric_bounds.regression_bounds(request.metric, columns.label[rows], columns.prediction[rows], **kw)
    return float(b.low[0]), float(b.high[0])


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion (good for small samples and rates near 0 or 1).

    Args:
        successes: number of successes (e.g. correct predictions).
        n: number of trials (labelled predictions).
        confidence: two-sided confidence level in (0, 1).

    Returns:
        (low, high); (0.0, 1.0) when ``n`` is 0.

    Raises:
        ValueError: ``successes`` outside [0, n] or confidence outside (0, 1).
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / n
    z2n = z * z / n
    centre = (p + z2n / 2) / (1 + z2n)
    half = z * math.sqrt(p * (1 - p) / n + z2n / (4 * n)) / (1 + z2n)
    return max(0.0, centre - half), min(1.0, centre + half)
