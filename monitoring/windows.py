"""Per-window classification metrics and drift, vectorised over disjoint epoch-aligned windows."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np
import pandas as pd

from monitoring.drift import ReferenceStats
from monitoring.errors import DataError
from monitoring.records import Columns

#: Fewest rows with finite feature values for a window's drift to be computed.
MIN_DRIFT_ROWS = 30
#: Latency quantiles reported per window, as fractions (numpy's default "linear" method).
LATENCY_QUANTILES = (0.5, 0.95)
#: Rows per window from which per-window sorts beat one lexsort (the Python loop is then amortised).
_SEGMENT_SORT_ROWS = 64


@dataclass
class WindowResult:
    """Metrics of one deployment over one window ``[start_ms, end_ms)``.

    Attributes:
        deployment_crn: the deployment the predictions came from.
        start_ms: window start (a multiple of the window length since the epoch).
        end_ms: window end, exclusive.
        predictions: predictions in the window (with a prediction that is one of the classes).
        labelled: of those, how many have a ground-truth label that is one of the classes.
        accuracy: share of labelled predictions that were right (None when nothing is labelled).
        precision: for the positive class (binary) or the macro average (None when unlabelled).
        recall: as precision.
        f1: as precision.
        confusion: binary ``{"tp", "fp", "tn", "fn"}``; otherwise ``{"labels", "matrix"}`` with
            rows = true class, columns = predicted class.
        drift: ``{feature: {"psi", "ks"}}`` against the training reference (empty when there
            is no reference or fewer than ``min_drift_rows`` rows).
        unknown_class: rows whose prediction or label is not one of the classes (left out).
        latency_p50_ms: median prediction latency (``Columns.latency_ms``) of the window's rows
            with a prediction, in ms; None when none of them has a (finite) latency.
        latency_p95_ms: the 95th percentile, likewise. Both use numpy's default "linear"
            method, equal to ``np.percentile(values, q)``.
    """

    deployment_crn: str
    start_ms: int
    end_ms: int
    predictions: int
    labelled: int
    accuracy: float | None
    precision: float | None
    recall: float | None
    f1: float | None
    confusion: dict[str, Any]
    drift: dict[str, dict[str, float]] = field(default_factory=dict)
    unknown_class: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict of every field."""
        return asdict(self)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den with 0 where den == 0 (sklearn's zero_division=0)."""
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def _class_index(values: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Position of each value in ``classes`` (sorted), or -1 when it is NaN or not a class."""
    pos = np.searchsorted(classes, values)
    pos = np.minimum(pos, classes.size - 1)
    hit = classes[pos] == values  # NaN never matches
    return np.where(hit, pos, -1)


def _scores(cm: np.ndarray, binary: bool, positive: int) -> tuple[np.ndarray, ...]:
    """Accuracy, precision, recall, f1 for each confusion matrix in ``cm`` (g, c, c)."""
    total = cm.sum(axis=(1, 2))
    diag = np.diagonal(cm, axis1=1, axis2=2)
    true_sum, pred_sum = cm.sum(axis=2), cm.sum(axis=1)
    accuracy = _ratio(diag.sum(axis=1), total)
    if binary:
        tp, t, p = diag[:, positive], true_sum[:, positive], pred_sum[:, positive]
        return accuracy, _ratio(tp, p), _ratio(tp, t), _ratio(2 * tp, t + p)
    precision, recall, f1 = _ratio(diag, pred_sum), _ratio(diag, true_sum), _ratio(2 * diag, true_sum + pred_sum)
    present = (true_sum + pred_sum) > 0  # macro over classes seen in the window, as sklearn does
    n_present = np.maximum(present.sum(axis=1), 1)
    return (accuracy, (precision * present).sum(axis=1) / n_present, (recall * present).sum(axis=1) / n_present,
            (f1 * present).sum(axis=1) / n_present)


def _confusion(cm: np.ndarray, classes: list[int], binary: bool, positive: int) -> dict[str, Any]:
    if binary:
        neg = 1 - positive
        return {"tp": int(cm[positive, positive]), "fp": int(cm[neg, positive]),
                "tn": int(cm[neg, neg]), "fn": int(cm[positive, neg])}
    return {"labels": list(classes), "matrix": cm.astype(int).tolist()}


def _group_quantiles(group: np.ndarray, values: np.ndarray, n_groups: int,
                     quantiles: Sequence[float], contiguous: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Per-group quantiles of the finite ``values``, vectorised, bit-identical to ``np.percentile``'s "linear".

    One lexsort by (group, value); or, when ``group`` is non-decreasing, a sort of each group's
    run (the same values in the same places: finite floats that compare equal are identical,
    unless the run mixes 0.0 and -0.0, which takes the lexsort); each quantile q then sits at virtual position ``(n - 1) * q``
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
    ends = np.cumsum(counts)
    signs = np.signbit(values[values == 0])
    if contiguous and values.size >= _SEGMENT_SORT_ROWS * n_groups and (signs.all() or not signs.any()):
        ordered = values  # a copy already (masked above): sort each run in place
        for lo, hi in zip((ends - counts)[counts > 1].tolist(), ends[counts > 1].tolist()):
            ordered[lo:hi].sort()
    else:
        ordered = values[np.lexsort((values, group))]
    first = (ends - counts)[present]
    last = counts[present] - 1
    for row, q in enumerate(quantiles):
        virtual = last * q
        below = np.floor(virtual)
        t = virtual - below
        a = ordered[first + below.astype(np.int64)]
        b = ordered[first + np.minimum(below.astype(np.int64) + 1, last)]
        diff = b - a
        table[row, present] = np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)
    return table, present


def _crn_codes(crns: np.ndarray, has_pred: np.ndarray, every: bool) -> tuple[np.ndarray | None, Sequence[Any]]:
    """Sorted CRN codes of the rows with a prediction, and the CRNs; codes None when all rows share one CRN.

    Reads are per deployment, so one CRN is the usual case: one comparison pass (cheap when the
    entries are the same str object, as ``records_to_columns`` makes them) instead of hashing them all.
    """
    first = crns[0] if crns.size else None
    if first.__class__ is str and bool((crns == first).all()):
        return None, [first]
    return pd.factorize(crns if every else crns[has_pred], sort=True)


def _groups(start: np.ndarray, window_ms: int, crn_codes: np.ndarray | None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, int]:
    """Group each row by (CRN, window): ``np.unique`` of the keys ``code * span + window - w0``.

    Rows in time order (``records_to_columns``' order) with one CRN, the usual case, are
    grouped without a sort: the window edges are looked up in the start times.

    Returns:
        ``(keys, group, bounds, w0, span)``: the sorted distinct keys, each row's index into
        them, each group's run bounds (n_groups + 1) when the rows are grouped in runs (else
        None), the first window and the number of windows from it to the last.
    """
    n = start.size
    w0 = int(start.min()) // window_ms
    span = int(start.max()) // window_ms - w0 + 1
    if crn_codes is None and span <= n and not (start[1:] < start[:-1]).any():
        edges = np.searchsorted(start, np.arange(w0 + 1, w0 + span, dtype=np.int64) * window_ms)
        sizes = np.diff(edges, prepend=0, append=n)
        keys = np.flatnonzero(sizes)
        bounds = np.concatenate(([0], np.cumsum(sizes[keys])))
        return keys, np.repeat(np.arange(keys.size), sizes[keys]), bounds, w0, span
    window = start // window_ms - w0
    composite = window if crn_codes is None else crn_codes.astype(np.int64) * span + window
    if n > 1 and (composite[1:] < composite[:-1]).any():
        keys, group = np.unique(composite, return_inverse=True)
        return keys, group.reshape(-1), None, w0, span
    change = np.empty(n, dtype=bool)
    change[:1] = False
    np.not_equal(composite[1:], composite[:-1], out=change[1:])
    bounds = np.concatenate(([0], np.flatnonzero(change), [n]))
    return composite[bounds[:-1]], np.cumsum(change, dtype=np.intp), bounds, w0, span


def _drift(reference: ReferenceStats, names: Sequence[str], rows: np.ndarray, minimum: int) -> dict:
    out = {}
    for j, name in enumerate(names):
        if name not in reference.features:
            continue
        values = rows[:, j]
        values = values[np.isfinite(values)]
        if values.size >= minimum:
            out[name] = {"psi": reference.psi(name, values), "ks": reference.ks(name, values)}
    return out


def compute_windows(columns: Columns, window_ms: int, classes: Sequence[int],
                    reference: ReferenceStats | None = None, positive_class: int = 1,
                    min_drift_rows: int = MIN_DRIFT_ROWS) -> list[WindowResult]:
    """Metrics for every (deployment, window) that has predictions.

    Windows are ``[k * window_ms, (k + 1) * window_ms)`` by request start time. Metrics follow
    sklearn with ``zero_division=0``: binary (two classes) reports ``positive_class``; more
    classes report macro averages over the classes present in the window. Latency p50/p95 are
    over every row of the window that has a prediction (also one outside the classes) and a
    latency, by numpy's default "linear" percentile method.

    Args:
        columns: output of ``records_to_columns``.
        window_ms: window length in milliseconds.
        classes: the model's classes.
        reference: training reference for drift; None skips drift.
        positive_class: the positive class for binary metrics.
        min_drift_rows: fewest finite values of a feature for its drift to be reported.

    Returns:
        Results ordered by deployment CRN, then start time.

    Raises:
        DataError: ``window_ms`` is not positive, fewer than two classes, or the positive
            class is not one of them.
    """
    if window_ms <= 0:
        raise DataError(f"window length must be positive, got {window_ms} ms")
    class_arr = np.array(sorted({int(c) for c in classes}), dtype=np.float64)
    n_cls = class_arr.size
    if n_cls < 2:
        raise DataError(f"need at least two classes, got {list(classes)}")
    binary = n_cls == 2
    if binary and positive_class not in class_arr:
        raise DataError(f"positive class {positive_class} is not one of the classes {list(classes)}")
    positive = int(np.flatnonzero(class_arr == positive_class)[0]) if binary else 0

    has_pred = ~np.isnan(columns.prediction)
    if not has_pred.any():
        return []
    every = bool(has_pred.all())

    def rows(arr: np.ndarray) -> np.ndarray:
        return arr if every else arr[has_pred]

    crn_codes, crn_names = _crn_codes(columns.deployment_crn, has_pred, every)
    keys, group, bounds, w0, span = _groups(rows(columns.start_ms), window_ms, crn_codes)
    n_groups = keys.size

    y_pred = _class_index(rows(columns.prediction), class_arr)
    label = rows(columns.label)
    y_true = _class_index(label, class_arr)
    known = y_pred >= 0
    labelled = known & (y_true >= 0)
    has_label = ~np.isnan(label)
    unknown = np.bincount(group, weights=((~known) | (has_label & (y_true < 0))).astype(np.float64), minlength=n_groups)
    predictions = np.bincount(group[known], minlength=n_groups)
    cells = (group[labelled] * n_cls + y_true[labelled]) * n_cls + y_pred[labelled]
    cm = np.bincount(cells, minlength=n_groups * n_cls * n_cls).reshape(n_groups, n_cls, n_cls)
    accuracy, precision, recall, f1 = _scores(cm, binary, positive)
    n_labelled = cm.sum(axis=(1, 2))
    latency, has_latency = _group_quantiles(group, rows(columns.latency_ms), n_groups, LATENCY_QUANTILES,
                                            contiguous=bounds is not None)

    drift = None
    if reference is not None:
        features = rows(columns.features)
        if bounds is None:  # groups interleaved: gather each group's rows
            order = np.argsort(group, kind="stable")
            bounds = np.searchsorted(group[order], np.arange(n_groups + 1))
            features = features[order]
        drift = [_drift(reference, columns.feature_names, features[bounds[g]:bounds[g + 1]], min_drift_rows)
                 for g in range(n_groups)]
    class_list = [int(c) for c in class_arr]
    results = []
    for g in range(n_groups):
        k = int(keys[g])
        w_start = (w0 + k % span) * window_ms
        has = n_labelled[g] > 0
        results.append(WindowResult(
            deployment_crn=str(crn_names[k // span]), start_ms=int(w_start), end_ms=int(w_start + window_ms),
            predictions=int(predictions[g]), labelled=int(n_labelled[g]),
            accuracy=float(accuracy[g]) if has else None, precision=float(precision[g]) if has else None,
            recall=float(recall[g]) if has else None, f1=float(f1[g]) if has else None,
            confusion=_confusion(cm[g], class_list, binary, positive),
            drift=drift[g] if drift is not None else {},
            unknown_class=int(unknown[g]),
            latency_p50_ms=float(latency[0, g]) if has_latency[g] else None,
            latency_p95_ms=float(latency[1, g]) if has_latency[g] else None))
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
