"""Which prediction records fall in which (deployment, window) group, and each group's latency quantiles."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.domain.records.columns import Columns
from monitoring.domain.records.rows import nondecreasing

#: Latency quantiles reported per window, as fractions (numpy's default "linear" method).
LATENCY_QUANTILES = (0.5, 0.95)
#: Fewest rows per window spanned, on average, for the per-window pass: it costs about 25 us a
#: window, and the vectorised grouping about 0.3 us a row.
_RUN_MIN_ROWS = 128


def _lerp(a: np.ndarray, b: np.ndarray, last: np.ndarray, q: float) -> np.ndarray:
    """numpy's "linear" interpolation (with its ``t >= 0.5`` form) between the sorted values at
    ``floor((n - 1) * q)`` (``a``) and the next one (``b``); ``last`` is n - 1 per group."""
    virtual = last * q
    t = virtual - np.floor(virtual)
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def _group_quantiles(
    group: np.ndarray, values: np.ndarray, n_groups: int, quantiles: Sequence[float]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-group quantiles of the finite ``values``, vectorised, bit-identical to ``np.percentile``'s "linear".

    One lexsort by (group, value); each quantile q then sits at virtual position ``(n - 1) * q``
    of its group's sorted run and is interpolated with numpy's own lerp (including its
    ``t >= 0.5`` form), so the results equal ``np.percentile(group_values, 100 * q)`` exactly.

    Returns:
        ``(table, present)``: table (len(quantiles), n_groups) float64, and a mask of groups
        with at least one value (their table entries are meaningful; the others are NaN).
    """
    keep = np.isfinite(values)
    group, values = group[keep], values[keep]
    counts = np.bincount(group, minlength=n_groups)
    table = np.full((len(quantiles), n_groups), math.nan)
    present = counts > 0
    if not present.any():
        return table, present
    ordered = values[np.lexsort((values, group))]
    first = (np.cumsum(counts) - counts)[present]
    last = counts[present] - 1
    for row, q in enumerate(quantiles):
        below = np.floor(last * q).astype(np.int64)
        table[row, present] = _lerp(ordered[first + below], ordered[first + np.minimum(below + 1, last)], last, q)
    return table, present


def _sorted_finite(values: np.ndarray) -> np.ndarray:
    """The finite values, sorted: the lexsort's order (equal finite floats are identical, but for
    0.0 and -0.0, whose input order a stable sort keeps)."""
    finite = values[np.isfinite(values)]
    signs = np.signbit(finite[finite == 0])
    finite.sort(kind="stable" if signs.any() and not signs.all() else None)
    return finite


def _slice_quantiles(values: np.ndarray) -> list[float | None]:
    """``_group_quantiles`` of one group's values (the same floats)."""
    finite = _sorted_finite(values)
    if not finite.size:
        return [None] * len(LATENCY_QUANTILES)
    last = np.array([finite.size - 1], dtype=np.int64)
    out = []
    for q in LATENCY_QUANTILES:
        below = math.floor((finite.size - 1) * q)  # as np.floor(last * q) in _group_quantiles
        low, high = finite[below : below + 1], finite[min(below + 1, finite.size - 1) :][:1]
        out.append(float(_lerp(low, high, last, q)[0]))
    return out


@dataclass
class Groups:
    """The (deployment, window) groups of one call and where their rows are.

    ``rows(g)`` gives the index of group g's rows that have a prediction, into the columns (a
    slice when the rows of one deployment are in time order, the per-window pass); ``group``
    is set for the vectorised grouping: the group of each row in ``index`` (the rows with a
    prediction).
    """

    crns: list[str]
    starts: list[int]
    rows: Callable[[int], Any]
    index: np.ndarray | None = None
    group: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.starts)


def window_runs(columns: Columns, window_ms: int) -> tuple[str, np.ndarray, np.ndarray] | None:
    """One CRN, rows in time order, at least ``_RUN_MIN_ROWS`` rows per window spanned: the CRN,
    each non-empty window's start and its rows' bounds (n_windows + 1); else None."""
    start, crns = columns.start_ms, columns.deployment_crn
    n = start.size
    if not n or crns[0].__class__ is not str:
        return None
    w0, w_last = int(start[0]) // window_ms, int(start[-1]) // window_ms
    if (w_last - w0 + 1) * _RUN_MIN_ROWS > n or not nondecreasing(start):
        return None
    step = 1 << 16  # slices: no temporary as long as the column
    if not all(bool((crns[lo : lo + step] == crns[0]).all()) for lo in range(0, n, step)):
        return None
    edges = np.searchsorted(start, np.arange(w0 + 1, w_last + 1, dtype=np.int64) * window_ms)
    bounds = np.concatenate(([0], edges, [n]))
    windows = np.flatnonzero(bounds[1:] > bounds[:-1])
    return crns[0], (w0 + windows) * window_ms, np.append(bounds[windows], bounds[-1])


def _run_groups(columns: Columns, runs: tuple[str, np.ndarray, np.ndarray]) -> Groups:
    """Windows of one deployment in time order: each window's rows are a slice (no temporaries as
    long as the columns, whose fresh pages each cost a fault), less those without a prediction."""
    crn, starts, bounds = runs
    kept, picks = [], []
    for g, (lo, hi) in enumerate(zip(bounds[:-1].tolist(), bounds[1:].tolist())):
        has = ~np.isnan(columns.prediction[lo:hi])
        if has.all():
            picks.append(slice(lo, hi))
        elif has.any():
            picks.append(lo + np.flatnonzero(has))
        else:
            continue
        kept.append(g)
    return Groups([crn] * len(kept), starts[kept].tolist(), picks.__getitem__)


def _vectorised_groups(columns: Columns, window_ms: int) -> Groups:
    """Any rows: groups by (CRN, window) with ``np.unique``."""
    index = np.flatnonzero(~np.isnan(columns.prediction))
    if not index.size:
        return Groups([], [], lambda g: index)
    start = columns.start_ms[index]
    crn_codes, crn_names = pd.factorize(columns.deployment_crn[index], sort=True)
    window = start // window_ms
    w0 = int(window.min())
    span = int(window.max()) - w0 + 1
    keys, group = np.unique(crn_codes.astype(np.int64) * span + (window - w0), return_inverse=True)
    group = group.reshape(-1)
    order = np.argsort(group, kind="stable")
    edges = np.searchsorted(group[order], np.arange(keys.size + 1))
    sorted_index = index[order]
    return Groups(
        [str(crn_names[k // span]) for k in keys.tolist()],
        [(w0 + k % span) * window_ms for k in keys.tolist()],
        lambda g: sorted_index[edges[g] : edges[g + 1]],
        index,
        group,
    )


def class_rows(columns: Columns, rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class indexes of ``rows`` (-1: no class, or no label)."""
    c = len(columns.classes)
    pred, label = columns.prediction[rows], columns.label[rows]
    y_pred = np.where((pred >= 0) & (pred < c), pred, -1).astype(np.intp)
    y_true = np.where((label >= 0) & (label < c), label, -1).astype(np.intp)
    return y_pred, y_true


def proba_rows(columns: Columns, rows: Any) -> np.ndarray | None:
    """The tracked probabilities of ``rows``; None when none were tracked."""
    return None if columns.proba is None else columns.proba[rows]


def group_windows(columns: Columns, window_ms: int) -> Groups:
    """The (deployment, window) groups of the records that have a prediction.

    Windows are ``[k * window_ms, (k + 1) * window_ms)`` by request start time. The usual read
    (one deployment, in time order, many rows a window) takes a pass per window; any other
    rows are grouped at once.
    """
    runs = window_runs(columns, window_ms)
    return _run_groups(columns, runs) if runs is not None else _vectorised_groups(columns, window_ms)


def latencies(columns: Columns, groups: Groups) -> list[list[float | None]]:
    """Per group, the ``LATENCY_QUANTILES`` of its rows' latencies (None without any)."""
    if groups.group is None:
        return [_slice_quantiles(columns.latency_ms[groups.rows(g)]) for g in range(groups.n)]
    table, present = _group_quantiles(groups.group, columns.latency_ms[groups.index], groups.n, LATENCY_QUANTILES)
    return [[float(v) if present[g] else None for v in table[:, g]] for g in range(groups.n)]
