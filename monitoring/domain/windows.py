"""Per-window metrics of the model's task, their bounds, coverage, latency and drift, over disjoint epoch-aligned windows."""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from monitoring.core.errors import DataError
from monitoring.domain import metric_bounds, scoring
from monitoring.domain.categories import CategoricalReference, js_from_counts, psi_from_counts
from monitoring.domain.drift import PSI_EPSILON, ReferenceStats
from monitoring.domain.metric_tables import MetricTable, classification_table, regression_table
from monitoring.domain.metrics import WILSON, Task, metric_spec
from monitoring.domain.record_blocks import nondecreasing
from monitoring.domain.records import Columns
from monitoring.domain.window_metrics import WindowMetrics, bound_key

#: Fewest rows with finite feature values for a window's drift to be computed.
MIN_DRIFT_ROWS = 30
#: Latency quantiles reported per window, as fractions (numpy's default "linear" method).
LATENCY_QUANTILES = (0.5, 0.95)
#: Fewest rows per window spanned, on average, for the per-window pass: it costs about 25 us a
#: window, and the vectorised grouping about 0.3 us a row.
_RUN_MIN_ROWS = 128


@dataclass(frozen=True)
class BoundRequest:
    """A metric whose confidence bounds a policy or the report needs, at a two-sided level."""

    metric: str
    confidence: float = metric_bounds.DEFAULT_CONFIDENCE


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
class _Groups:
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


def _window_runs(columns: Columns, window_ms: int) -> tuple[str, np.ndarray, np.ndarray] | None:
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


def _run_groups(columns: Columns, runs: tuple[str, np.ndarray, np.ndarray]) -> _Groups:
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
    return _Groups([crn] * len(kept), starts[kept].tolist(), picks.__getitem__)


def _vectorised_groups(columns: Columns, window_ms: int) -> _Groups:
    """Any rows: groups by (CRN, window) with ``np.unique``."""
    index = np.flatnonzero(~np.isnan(columns.prediction))
    if not index.size:
        return _Groups([], [], lambda g: index)
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
    return _Groups(
        [str(crn_names[k // span]) for k in keys.tolist()],
        [(w0 + k % span) * window_ms for k in keys.tolist()],
        lambda g: sorted_index[edges[g] : edges[g + 1]],
        index,
        group,
    )


def _class_rows(columns: Columns, rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """Predicted and true class indexes of ``rows`` (-1: no class, or no label)."""
    c = len(columns.classes)
    pred, label = columns.prediction[rows], columns.label[rows]
    y_pred = np.where((pred >= 0) & (pred < c), pred, -1).astype(np.intp)
    y_true = np.where((label >= 0) & (label < c), label, -1).astype(np.intp)
    return y_pred, y_true


def _proba(columns: Columns, rows: Any) -> np.ndarray | None:
    return None if columns.proba is None else columns.proba[rows]


def _table(
    columns: Columns, rows: Any, group: np.ndarray | None, n_groups: int
) -> tuple[MetricTable, np.ndarray, np.ndarray]:
    """The task's metrics of ``rows`` per group, the predictions counted per group and those that name no class."""
    if not columns.is_classifier:
        pred, label = columns.prediction[rows], columns.label[rows]
        table = regression_table(label, pred, group, n_groups)
        counts = np.bincount(np.zeros(pred.size, np.intp) if group is None else group, minlength=n_groups)
        return table, counts, np.zeros(n_groups, dtype=np.intp)
    y_pred, y_true = _class_rows(columns, rows)
    table = classification_table(
        y_true, y_pred, len(columns.classes), columns.positive, _proba(columns, rows), group, n_groups
    )
    label = columns.label[rows]
    known = y_pred >= 0
    other = ~known | (~np.isnan(label) & (y_true < 0))
    g = np.zeros(y_pred.size, np.intp) if group is None else group
    return table, np.bincount(g[known], minlength=n_groups), np.bincount(g[other], minlength=n_groups)


@dataclass
class _Tables:
    """Everything per group of one ``compute_windows`` call."""

    values: dict[str, np.ndarray]
    confusion: np.ndarray | None
    labelled: np.ndarray
    predictions: np.ndarray
    unknown: np.ndarray
    latency: list[list[float | None]]


def _tables(columns: Columns, groups: _Groups) -> _Tables:
    if groups.group is not None:  # many small groups: everything at once, grouped
        table, predictions, unknown = _table(columns, groups.index, groups.group, groups.n)
        latency, present = _group_quantiles(groups.group, columns.latency_ms[groups.index], groups.n, LATENCY_QUANTILES)
        rows = [[float(v) if present[g] else None for v in latency[:, g]] for g in range(groups.n)]
        return _Tables(table.values, table.confusion, table.counts["rows"], predictions, unknown, rows)
    latency = [_slice_quantiles(columns.latency_ms[groups.rows(g)]) for g in range(groups.n)]
    if columns.is_classifier:
        return _class_windows(columns, groups, latency)
    parts = [_table(columns, groups.rows(g), None, 1) for g in range(groups.n)]
    return _Tables(
        {name: np.concatenate([p[0].values[name] for p in parts]) for name in parts[0][0].values},
        None,
        np.concatenate([p[0].counts["rows"] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        latency,
    )


def _class_windows(columns: Columns, groups: _Groups, latency: list) -> _Tables:
    """A classifier's windows one slice at a time: ``classification_table``'s numbers (the same floats:
    scores from the stacked confusion matrices, the same AUC counts and loss sums) with a few
    numpy calls per window, since a window a time is the usual read."""
    c, positive = len(columns.classes), columns.positive
    n = groups.n
    cm = np.zeros((n, c, c), dtype=np.intp)
    predictions, unknown = np.zeros(n, dtype=np.intp), np.zeros(n, dtype=np.intp)
    auc, loss = np.full(n, math.nan), np.full(n, math.nan)
    for g in range(n):
        rows = groups.rows(g)
        pred, label = columns.prediction[rows], columns.label[rows]
        known = (pred >= 0) & (pred < c)
        has_label = (label >= 0) & (label < c)
        scored = known & has_label
        predictions[g] = np.count_nonzero(known)
        unknown[g] = pred.size - predictions[g] + np.count_nonzero(known & ~has_label & ~np.isnan(label))
        y_true = label[scored].astype(np.intp)
        cm[g] = np.bincount(y_true * c + pred[scored].astype(np.intp), minlength=c * c).reshape(c, c)
        if columns.proba is not None:
            auc[g], loss[g] = _probability_scores(columns.proba[rows][scored], y_true, positive)
    values = dict(zip(("accuracy", "precision", "recall", "f1"), scoring.confusion_scores(cm, positive)))
    if columns.proba is not None:
        values.update(roc_auc=auc, log_loss=loss)
    return _Tables(values, cm, cm.sum(axis=(1, 2)), predictions, unknown, latency)


def _probability_scores(proba: np.ndarray, y_true: np.ndarray, positive: int | None) -> tuple[float, float]:
    """ROC AUC and log-loss of one window's scored rows, those with finite probabilities (the loss
    summed pairwise: within float rounding of ``classification_table``'s grouped sum)."""
    if positive is None:
        one = np.zeros(y_true.size, dtype=np.intp)
        finite = np.isfinite(proba).all(axis=1)
        t, matrix, one = y_true[finite], proba[finite], one[finite]
        return float(scoring.grouped_auc(one, 1, t, matrix, None)[0]), float(
            scoring.group_mean(one, 1, scoring.row_log_loss(t, matrix))[0]
        )
    if not np.isfinite(np.add.reduce(proba)):
        finite = np.isfinite(proba)
        proba, y_true = proba[finite], y_true[finite]
    is_positive = y_true == positive
    picked = np.where(is_positive, proba, 1.0 - proba)  # row_log_loss's pick from the expanded matrix
    np.log(np.clip(picked, scoring.EPS, 1.0 - scoring.EPS, out=picked), out=picked)
    loss = -float(np.add.reduce(picked)) / picked.size if picked.size else math.nan
    return scoring._one_auc(is_positive, proba), loss


def _bounds(
    columns: Columns, groups: _Groups, tables: _Tables, requests: Sequence[BoundRequest], seed: int, resamples: int
) -> list[dict[str, dict]]:
    """Per group, ``{bound_key(metric, confidence): {"low", "high", "method"}}`` of each defined metric asked for.

    Wilson intervals come from the confusion matrices at once; t and bootstrap bounds from each
    window's rows, a bootstrap drawn by a generator seeded with the seed, the deployment and
    the window (so a window's bounds do not depend on which others were computed with it).
    """
    out: list[dict[str, dict]] = [{} for _ in range(groups.n)]
    task = Task.CLASSIFICATION if columns.is_classifier else Task.REGRESSION
    n_classes = len(columns.classes)
    for request in dict.fromkeys(requests):
        spec = metric_spec(request.metric)
        values = tables.values.get(request.metric)
        if spec.task is not task or values is None:
            continue
        method = spec.bound_method(n_classes)
        if method == WILSON:
            wilson = metric_bounds.confusion_wilson(
                request.metric, tables.confusion, columns.positive, request.confidence
            )
            pairs = list(zip(wilson.low.tolist(), wilson.high.tolist()))
        else:
            pairs = [
                _window_bound(columns, groups, g, request, seed, resamples) if not math.isnan(values[g]) else None
                for g in range(groups.n)
            ]
        for g, pair in enumerate(pairs):
            if pair is not None and not math.isnan(values[g]):
                out[g][bound_key(request.metric, request.confidence)] = {
                    "low": pair[0],
                    "high": pair[1],
                    "method": method,
                }
    return out


def _window_bound(
    columns: Columns, groups: _Groups, g: int, request: BoundRequest, seed: int, resamples: int
) -> tuple[float, float]:
    rows = groups.rows(g)
    rng = np.random.default_rng([seed, zlib.crc32(groups.crns[g].encode()), groups.starts[g]])
    kw = dict(confidence=request.confidence, rng=rng, resamples=resamples)
    if columns.is_classifier:
        y_pred, y_true = _class_rows(columns, rows)
        b = metric_bounds.classification_bounds(
            request.metric, y_true, y_pred, len(columns.classes), columns.positive, _proba(columns, rows), **kw
        )
    else:
        b = metric_bounds.regression_bounds(request.metric, columns.label[rows], columns.prediction[rows], **kw)
    return float(b.low[0]), float(b.high[0])


def _drift(columns: Columns, groups: _Groups, reference: ReferenceStats, minimum: int) -> list[dict]:
    """Per group, ``{feature: {"psi", "ks"}}`` (numeric) or ``{"psi", "js"}`` (categorical) of each
    referenced feature with at least ``minimum`` usable values."""
    out: list[dict] = [{} for _ in range(groups.n)]
    numeric = [(j, n) for j, n in enumerate(columns.feature_names) if n in reference.features]
    for g in range(groups.n):
        if not numeric:
            break
        rows = columns.features[groups.rows(g)]
        for j, name in numeric:
            values = rows[:, j]
            values = values[np.isfinite(values)]
            if values.size >= minimum:
                out[g][name] = reference.drift(name, values)
    for name, values in columns.categories.items():
        ref = reference.features.get(name)
        if not isinstance(ref, CategoricalReference):
            continue
        for g in range(groups.n):
            counts = ref.bucket_counts(values[groups.rows(g)])
            if counts.sum() >= minimum:
                out[g][name] = {
                    "psi": float(psi_from_counts(ref.expected, counts, PSI_EPSILON)[0]),
                    "js": float(js_from_counts(ref.expected, counts)[0]),
                }
    return out


def _confusion(cm: np.ndarray, classes: Sequence[Any], positive: int | None) -> dict[str, Any]:
    if positive is not None:
        neg = 1 - positive
        return {
            "tp": int(cm[positive, positive]),
            "fp": int(cm[neg, positive]),
            "tn": int(cm[neg, neg]),
            "fn": int(cm[positive, neg]),
        }
    return {"labels": list(classes), "matrix": cm.astype(int).tolist()}


def compute_windows(
    columns: Columns,
    window_ms: int,
    reference: ReferenceStats | None = None,
    *,
    bounds: Sequence[BoundRequest] = (),
    seed: int = 0,
    min_drift_rows: int = MIN_DRIFT_ROWS,
    resamples: int = metric_bounds.DEFAULT_RESAMPLES,
) -> list[WindowMetrics]:
    """The task's metrics for every (deployment, window) that has predictions.

    Windows are ``[k * window_ms, (k + 1) * window_ms)`` by request start time. A classifier
    gets accuracy, precision, recall, F1 and, when probabilities are tracked, ROC AUC and
    log-loss; a regressor MAE, RMSE, MAPE, R² and bias (``metric_tables``, as sklearn computes
    them; a metric undefined on a window, such as precision with no positive prediction, is
    None, never 0). Latency p50/p95 are over every row of the window that has a prediction
    (also one naming no class) and a latency, by numpy's default "linear" percentile method.

    Args:
        columns: output of ``records_to_columns`` (its classes say the task).
        window_ms: window length in milliseconds.
        reference: training reference for drift; None skips drift.
        bounds: metrics to bound (``metric_bounds``), each at its confidence; those of the
            other task are left out.
        seed: seeds the bootstrap bounds (with the deployment and the window).
        min_drift_rows: fewest usable values of a feature for its drift to be reported.
        resamples: bootstrap resamples per window.

    Returns:
        Results ordered by deployment CRN, then start time.

    Raises:
        DataError: ``window_ms`` is not positive, or a classifier with fewer than two classes.
    """
    if window_ms <= 0:
        raise DataError(f"window length must be positive, got {window_ms} ms")
    if columns.is_classifier and len(columns.classes) < 2:
        raise DataError(f"need at least two classes, got {list(columns.classes)}")
    runs = _window_runs(columns, window_ms)  # the usual read: one deployment, in time order
    groups = _run_groups(columns, runs) if runs is not None else _vectorised_groups(columns, window_ms)
    if not groups.n:
        return []
    tables = _tables(columns, groups)
    window_bounds = _bounds(columns, groups, tables, bounds, seed, resamples)
    drift = _drift(columns, groups, reference, min_drift_rows) if reference is not None else None
    results = []
    for g, (crn, w_start) in enumerate(zip(groups.crns, groups.starts)):
        scores = {name: (None if math.isnan(v[g]) else float(v[g])) for name, v in tables.values.items()}
        p50, p95 = tables.latency[g]
        results.append(
            WindowMetrics(
                deployment_crn=crn,
                start_ms=int(w_start),
                end_ms=int(w_start + window_ms),
                predictions=int(tables.predictions[g]),
                labelled=int(tables.labelled[g]),
                confusion={}
                if tables.confusion is None
                else _confusion(tables.confusion[g], columns.classes, columns.positive),
                drift=drift[g] if drift is not None else {},
                latency_p50_ms=p50,
                latency_p95_ms=p95,
                unknown_class=int(tables.unknown[g]),
                bounds=window_bounds[g],
                **scores,
            )
        )
    return results


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
