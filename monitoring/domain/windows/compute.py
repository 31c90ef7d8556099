"""Per-window metrics of the model's task, their bounds, coverage, latency and drift, over disjoint epoch-aligned windows."""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from monitoring.core.errors import DataError
from monitoring.domain.estimation.model import EstimationModel, with_realized
from monitoring.domain.metrics import bounds as metric_bounds
from monitoring.domain.metrics import scoring
from monitoring.domain.metrics.categories import CategoricalReference, js_from_counts, psi_from_counts
from monitoring.domain.metrics.drift import PSI_EPSILON, ReferenceStats
from monitoring.domain.metrics.tables import MetricTable, classification_table, regression_table
from monitoring.domain.multivariate.classifier import JointReference, joint_drift, window_inputs
from monitoring.domain.multivariate.quality import window_quality
from monitoring.domain.records.columns import Columns
from monitoring.domain.slices.model import Slicing
from monitoring.domain.windows.bounds import BoundRequest, window_bounds
from monitoring.domain.windows.groups import Groups, class_rows, group_windows, latencies, proba_rows
from monitoring.domain.windows.results import WindowMetrics

#: Fewest rows with finite feature values for a window's drift to be computed.
MIN_DRIFT_ROWS = 30


def _table(
    columns: Columns, rows: Any, group: np.ndarray | None, n_groups: int
) -> tuple[MetricTable, np.ndarray, np.ndarray]:
    """The task's metrics of ``rows`` per group, the predictions counted per group and those that name no class."""
    if not columns.is_classifier:
        pred, label = columns.prediction[rows], columns.label[rows]
        table = regression_table(label, pred, group, n_groups)
        counts = np.bincount(np.zeros(pred.size, np.intp) if group is None else group, minlength=n_groups)
        return table, counts, np.zeros(n_groups, dtype=np.intp)
    y_pred, y_true = class_rows(columns, rows)
    table = classification_table(
        y_true, y_pred, len(columns.classes), columns.positive, proba_rows(columns, rows), group, n_groups
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
    zero_targets: np.ndarray | None = None
    """A regressor's rows left out of MAPE (target 0) per group; None for a classifier."""


def _tables(columns: Columns, groups: Groups) -> _Tables:
    latency = latencies(columns, groups)
    if groups.group is not None:  # many small groups: everything at once, grouped
        table, predictions, unknown = _table(columns, groups.index, groups.group, groups.n)
        zero = table.counts.get("zero_target")
        return _Tables(table.values, table.confusion, table.counts["rows"], predictions, unknown, latency, zero)
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
        np.concatenate([p[0].counts["zero_target"] for p in parts]),
    )


def _class_windows(columns: Columns, groups: Groups, latency: list) -> _Tables:
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


def _drift(
    columns: Columns, groups: Groups, reference: ReferenceStats, minimum: int, seen: dict | None = None
) -> list[dict]:
    """Per group, ``{feature: {"psi", "ks"}}`` (numeric) or ``{"psi", "js"}`` (categorical) of each
    referenced feature with at least ``minimum`` usable values; ``seen`` gets each group's category
    counts by ``(group, feature)``, for the data quality."""
    out: list[dict] = [{} for _ in range(groups.n)]
    seen = {} if seen is None else seen
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
            seen[(g, name)] = counts
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


def _extras(columns: Columns, rows: Any, reference, slicing, joint, quality: bool, seed: int) -> dict[str, Any]:
    """A window's slices, joint drift and data quality, those asked for."""
    out: dict[str, Any] = {}
    if slicing is not None:
        out["slices"] = slicing.window(columns, rows)
    if joint is not None:
        numeric, categorical = window_inputs(
            joint.names,
            columns.feature_names,
            columns.features[rows],
            {name: values[rows] for name, values in columns.categories.items()},
        )
        out["joint_drift"] = joint_drift(joint, numeric, categorical, seed) or {}
    return out


def compute_windows(
    columns: Columns,
    window_ms: int,
    reference: ReferenceStats | None = None,
    *,
    bounds: Sequence[BoundRequest] = (),
    seed: int = 0,
    min_drift_rows: int = MIN_DRIFT_ROWS,
    resamples: int = metric_bounds.DEFAULT_RESAMPLES,
    estimation: EstimationModel | None = None,
    slicing: Slicing | None = None,
    joint: JointReference | None = None,
    quality: bool = False,
) -> list[WindowMetrics]:
    """The task's metrics for every (deployment, window) that has predictions.

    Windows are ``[k * window_ms, (k + 1) * window_ms)`` by request start time. A classifier
    gets accuracy, precision, recall, F1 and, when probabilities are tracked, ROC AUC and
    log-loss; a regressor MAE, RMSE, MAPE, R² and bias (``metrics.tables``, as sklearn computes
    them; a metric undefined on a window, such as precision with no positive prediction, is
    None, never 0). MAPE leaves out rows whose target is 0; a regressor's window counts them in
    ``zero_targets``. Latency p50/p95 are over every row of the window that has a prediction
    (also one naming no class) and a latency, by numpy's default "linear" percentile method.

    Args:
        columns: output of ``records_to_columns`` (its classes say the task).
        window_ms: window length in milliseconds.
        reference: training reference for drift; None skips drift.
        bounds: metrics to bound (``metrics.bounds``), each at its confidence; those of the
            other task are left out.
        seed: seeds the bootstrap bounds (with the deployment and the window).
        min_drift_rows: fewest usable values of a feature for its drift to be reported.
        resamples: bootstrap resamples per window.
        estimation: the model version's estimation model: each window's performance estimated
            from its predictions alone, the realized metric beside it; None skips estimation.
        slicing: the configured slices and their reference: each window's slices; None skips them.
        joint: the reference sample of the domain classifier: each window's joint drift (seeded
            with ``seed`` and the window); None skips it.
        quality: each window's data quality against ``reference`` (missing, out of range, unseen).

    Returns:
        Results ordered by deployment CRN, then start time.

    Raises:
        DataError: ``window_ms`` is not positive, or a classifier with fewer than two classes.
    """
    if window_ms <= 0:
        raise DataError(f"window length must be positive, got {window_ms} ms")
    if columns.is_classifier and len(columns.classes) < 2:
        raise DataError(f"need at least two classes, got {list(columns.classes)}")
    groups = group_windows(columns, window_ms)
    if not groups.n:
        return []
    tables = _tables(columns, groups)
    bounded = window_bounds(columns, groups, tables.values, tables.confusion, bounds, seed, resamples)
    seen: dict = {}
    drift = _drift(columns, groups, reference, min_drift_rows, seen) if reference is not None else None
    # the domain classifier's small matrices: one BLAS thread is several times faster than many
    with threadpool_limits(1) if joint is not None else nullcontext():
        return _results(
            columns,
            groups,
            window_ms,
            tables,
            bounded,
            drift,
            reference,
            estimation,
            slicing,
            joint,
            quality,
            seed,
            seen,
        )


def _results(
    columns, groups, window_ms, tables, bounded, drift, reference, estimation, slicing, joint, quality, seed, seen
):
    results = []
    for g, (crn, w_start) in enumerate(zip(groups.crns, groups.starts)):
        scores = {name: (None if math.isnan(v[g]) else float(v[g])) for name, v in tables.values.items()}
        p50, p95 = tables.latency[g]
        rows = groups.rows(g)
        estimated = {} if estimation is None else with_realized(estimation.estimate(columns, rows), scores)
        extra = _extras(columns, rows, reference, slicing, joint, quality, seed + int(w_start // window_ms))
        if quality and reference is not None:
            extra["quality"] = window_quality(columns, rows, reference, {n: c for (k, n), c in seen.items() if k == g})
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
                zero_targets=None if tables.zero_targets is None else int(tables.zero_targets[g]),
                bounds=bounded[g],
                estimated=estimated,
                **extra,
                **scores,
            )
        )
    return results
