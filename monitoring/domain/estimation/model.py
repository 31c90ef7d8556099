"""What a model version keeps to estimate its performance without labels, and a window's estimate from it.

Fitted at training time on the reference held-out rows (``fit_classifier``, ``fit_regressor``),
stored under ``estimation`` in the artifact's metadata (``to_dict``), read back by the windows
(``EstimationModel.from_dict``) and applied to each window's rows (``estimate``): one pass over
the window's arrays, nothing kept between windows, no history re-read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.core.errors import DataError
from monitoring.domain.estimation.calibration import Calibration
from monitoring.domain.estimation.cbpe import estimate_binary, estimate_top_label
from monitoring.domain.estimation.loss import LossModel, numeric_matrix
from monitoring.domain.records.columns import Columns

FORMAT_VERSION = 1
#: Metrics a window's estimate may hold, by task.
ESTIMATED = {"classification": ("accuracy", "precision", "recall", "f1", "roc_auc"), "regression": ("mae", "rmse")}


@dataclass(frozen=True)
class EstimationModel:
    """A classifier's calibration (binary: of P(positive); multi-class: of the predicted class's
    probability) or a regressor's loss model."""

    task: str
    calibration: Calibration | None = None
    loss: LossModel | None = None
    binary: bool = True

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT_VERSION, "task": self.task, "binary": self.binary}
        if self.calibration is not None:
            out["calibration"] = self.calibration.to_dict()
        if self.loss is not None:
            out["loss"] = self.loss.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EstimationModel:
        """Raises: DataError naming what is malformed."""
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_VERSION:
            raise DataError(f"estimation: expected format {FORMAT_VERSION}, got {dict(data or {}).get('format')!r}")
        task = data.get("task")
        if task == "classification" and isinstance(data.get("calibration"), Mapping):
            return cls(task, calibration=Calibration.from_dict(data["calibration"]), binary=bool(data.get("binary")))
        if task == "regression" and isinstance(data.get("loss"), Mapping):
            return cls(task, loss=LossModel.from_dict(data["loss"]))
        raise DataError(f"estimation: task {task!r} without its calibration or loss model")

    def estimate(self, columns: Columns, rows: Any) -> dict[str, dict[str, Any]]:
        """Each estimated metric of ``rows``: ``{"value", "low", "high", "rows"}`` (95% interval); ``{}`` without usable rows."""
        if self.task == "regression":
            found = self._regression(columns, rows)
        elif columns.proba is None:
            return {}
        else:
            found = self._classification(columns, rows)
        return {m: {**v, "rows": n} for m, (v, n) in found.items() if v.get("value") is not None}

    def _classification(self, columns: Columns, rows: Any) -> dict[str, tuple[dict, int]]:
        pred = columns.prediction[rows]
        proba = columns.proba[rows]
        c = len(columns.classes)
        known = (pred >= 0) & (pred < c)
        if self.binary and proba.ndim == 1 and columns.positive is not None:
            keep = known & np.isfinite(proba)
            score = proba[keep]
            found = estimate_binary(score, self.calibration(score), pred[keep] == columns.positive)
        elif not self.binary and proba.ndim == 2:
            keep = known & np.isfinite(proba).all(axis=1)
            picked = proba[keep][np.arange(int(keep.sum())), pred[keep].astype(np.intp)]
            found = estimate_top_label(self.calibration(picked))
        else:
            return {}
        n = int(keep.sum())
        return {m: (v, n) for m, v in found.items()}

    def _regression(self, columns: Columns, rows: Any) -> dict[str, tuple[dict, int]]:
        pred = columns.prediction[rows]
        keep = np.isfinite(pred)
        numeric = numeric_matrix(self.loss.numeric, columns.feature_names, columns.features[rows][keep])
        cats = {name: values[rows][keep] for name, values in columns.categories.items()}
        n = int(keep.sum())
        return {m: (v, n) for m, v in self.loss.estimate(pred[keep], numeric, cats).items()}


def fit_classifier(proba: Any, y_true: Any, positive: int | None) -> EstimationModel:
    """Calibrate a classifier on held-out rows: ``proba`` (n, classes) in class order, ``y_true`` class indexes.

    Raises:
        DataError: too few rows or one outcome only.
    """
    matrix = np.asarray(proba, dtype=float)
    y = np.asarray(y_true, dtype=np.intp)
    if positive is not None and matrix.shape[1] == 2:
        return EstimationModel("classification", Calibration.fit(matrix[:, positive], y == positive), binary=True)
    top = np.argmax(matrix, axis=1)
    picked = matrix[np.arange(matrix.shape[0]), top]
    return EstimationModel("classification", Calibration.fit(picked, top == y), binary=False)


def fit_regressor(
    prediction: Any, target: Any, numeric: Mapping[str, Any], categories: Mapping[str, Any]
) -> EstimationModel:
    """Fit a regressor's loss model on held-out rows (``LossModel.fit``)."""
    return EstimationModel("regression", loss=LossModel.fit(prediction, target, numeric, categories))


def with_realized(estimate: Mapping[str, dict], realized: Mapping[str, float | None]) -> dict[str, dict]:
    """Each estimate with the window's realized metric beside it and the estimation error (estimate - realized)."""
    out = {}
    for metric, item in estimate.items():
        value, actual = item.get("value"), realized.get(metric)
        out[metric] = {
            **item,
            "realized": actual,
            "error": None if value is None or actual is None else float(value) - float(actual),
        }
    return out
