"""The slices of a model version: the config's cuts and the reference statistics of each slice, fitted on the
version's held-out rows; a window's slices from its rows, each with its statistics, metrics and bounds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.config.slices import SliceBy
from monitoring.domain.records.columns import Columns
from monitoring.domain.slices.members import memberships
from monitoring.domain.slices.stats import classifier_stats, regressor_stats, slice_metrics


def _stats(cuts, numeric, categorical, n, task_rows) -> dict[str, dict]:
    """Every slice's statistics: ``task_rows(index, k)`` gives them per slice of one cut."""
    out: dict[str, dict] = {}
    for names, index in memberships(cuts, numeric, categorical, n):
        if names:
            for name, stats in zip(names, task_rows(index, len(names))):
                out[name] = stats
    return out


def stats_of_rows(
    cuts: Sequence[SliceBy],
    numeric: Mapping[str, np.ndarray],
    categorical: Mapping[str, np.ndarray],
    *,
    y_pred: np.ndarray | None = None,
    y_true: np.ndarray | None = None,
    positive: int | None = None,
    prediction: np.ndarray | None = None,
    label: np.ndarray | None = None,
) -> dict[str, dict]:
    """Statistics of every slice of some rows: a classifier's class indexes (``y_pred``, ``y_true``,
    -1: none) or a regressor's numbers (``prediction``, ``label``, NaN: none)."""
    if y_pred is not None:
        n = y_pred.size
        return _stats(cuts, numeric, categorical, n, lambda i, k: classifier_stats(i, k, y_pred, y_true, positive))
    n = prediction.size
    return _stats(cuts, numeric, categorical, n, lambda i, k: regressor_stats(i, k, prediction, label))


@dataclass(frozen=True)
class Slicing:
    """The cuts, the fewest labelled rows a slice needs, and each slice's reference statistics."""

    cuts: tuple[SliceBy, ...]
    min_rows: int
    reference: dict[str, dict]

    def window(self, columns: Columns, rows: Any) -> dict[str, dict]:
        """``{slice: {"stats", "metrics", "ref", "min_rows"}}`` of a window's rows (slices with no prediction left out)."""
        numeric = {name: columns.features[rows, j] for j, name in enumerate(columns.feature_names)}
        categorical = {name: values[rows] for name, values in columns.categories.items()}
        if columns.is_classifier:
            c = len(columns.classes)
            pred, label = columns.prediction[rows], columns.label[rows]
            y_pred = np.where((pred >= 0) & (pred < c), pred, -1).astype(np.intp)
            y_true = np.where((label >= 0) & (label < c), label, -1).astype(np.intp)
            found = stats_of_rows(
                self.cuts, numeric, categorical, y_pred=y_pred, y_true=y_true, positive=columns.positive
            )
        else:
            found = stats_of_rows(
                self.cuts, numeric, categorical, prediction=columns.prediction[rows], label=columns.label[rows]
            )
        return {
            name: {
                "stats": stats,
                "metrics": slice_metrics(stats),
                "ref": self.reference.get(name),
                "min_rows": self.min_rows,
            }
            for name, stats in found.items()
            if stats["rows"]
        }

    def to_dict(self) -> dict[str, Any]:
        return {"reference": self.reference}
