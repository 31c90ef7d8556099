"""Predicting and scoring any model the spec describes: predictions as class values or numbers, the task's metrics."""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from monitoring.config.metric_registry import task_metrics
from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import DataError
from monitoring.domain.metrics.tables import classification_table, encode_classes, regression_table
from monitoring.domain.training.estimators import THREADS, Capabilities, check_estimator


@dataclass(frozen=True)
class Predictions:
    """A model's predictions for many rows.

    Attributes:
        values: class values as in ``spec.classes`` (object array) or float64 numbers.
        proba: probabilities (n, n_classes) in ``spec.classes`` order, or None.
    """

    values: np.ndarray
    proba: np.ndarray | None = None


def predict_frame(
    estimator: Any,
    frame: pd.DataFrame,
    spec: ModelConfig,
    capabilities: Capabilities,
    *,
    argmax: bool = False,
    limit_threads: bool = True,
) -> Predictions:
    """Predict many rows at once.

    Args:
        estimator: a checked estimator.
        frame: rows with the spec's feature columns, typed by kind.
        spec: the model spec.
        capabilities: from ``check_estimator``.
        argmax: the estimator's ``predict`` is known to pick the most probable class (the
            built-in model, or ``predicts_most_probable`` held when it was trained): take it from
            the probabilities, one model call instead of two.
        limit_threads: run on ``THREADS`` threads (a caller that limited them already, such as
            a model replica, saves the few milliseconds this costs per call).

    Returns:
        The predictions, with probabilities when the estimator has ``predict_proba``.
    """
    x = frame[spec.feature_names]
    with threadpool_limits(THREADS) if limit_threads else nullcontext():
        proba = estimator.predict_proba(x) if capabilities.has_proba else None
        if argmax and proba is not None:
            raw = np.asarray(capabilities.proba_classes, dtype=object)[np.argmax(proba, axis=1)]
        else:
            raw = np.asarray(estimator.predict(x))
    if not spec.is_classifier:
        return Predictions(raw.astype(np.float64))
    by_text = {str(c): c for c in spec.classes}
    values = np.array([by_text[str(v.item() if isinstance(v, np.generic) else v)] for v in raw], dtype=object)
    if proba is None:
        return Predictions(values)
    order = [capabilities.proba_classes.index(c) for c in spec.classes]
    return Predictions(values, np.asarray(proba, dtype=np.float64)[:, order])


def predicts_most_probable(predictions: Predictions, spec: ModelConfig, capabilities: Capabilities) -> bool:
    """Whether each class ``predict`` gave is the one the one-call path takes from the probabilities.

    The one-call path (``predict_frame(..., argmax=True)``) picks the most probable class in the
    order of the estimator's ``classes_``, a tie going to the first, as scikit-learn's classifiers
    do; this compares that pick with ``predict``'s classes for the same rows.

    Args:
        predictions: ``predict_frame`` of the rows with ``argmax=False`` (both model calls).
        spec: the model spec.
        capabilities: the estimator's, from ``check_estimator``.

    Returns:
        True when every row agrees; False without probabilities or rows.
    """
    if predictions.proba is None or len(predictions.values) == 0:
        return False
    columns = [spec.classes.index(c) for c in capabilities.proba_classes]  # back to classes_ order
    picked = np.asarray(capabilities.proba_classes, dtype=object)[np.argmax(predictions.proba[:, columns], axis=1)]
    return bool(np.all(picked == predictions.values))


def _plain(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def score_predictions(y_true: Any, predictions: Predictions, spec: ModelConfig) -> dict[str, float | None]:
    """The task's metrics of predictions against labels (``monitoring/config/metric_registry.py``).

    Args:
        y_true: class values (classifier) or numbers (regressor).
        predictions: the model's predictions for the same rows.
        spec: the model spec.

    Returns:
        ``{metric: value or None when undefined, ..., "n": rows}``; the probability metrics only
        when probabilities are given.

    Raises:
        DataError: no rows, or arrays of different lengths.
    """
    n = len(predictions.values)
    if n == 0:
        raise DataError("cannot score a model on zero rows")
    if spec.is_classifier:
        classes = spec.classes
        positive = classes.index(spec.positive_class) if len(classes) == 2 else None
        table = classification_table(
            encode_classes(np.asarray(list(y_true), dtype=object), classes),
            encode_classes(predictions.values, classes),
            len(classes),
            positive,
            predictions.proba,
        )
    else:
        table = regression_table(np.asarray(y_true, dtype=np.float64), predictions.values)
    names = task_metrics(spec.task, probabilities=predictions.proba is not None)
    row = table.row(0)
    return {**{m: _plain(row[m]) if row.get(m) is not None else None for m in names}, "n": n}


def score(estimator: Any, frame: pd.DataFrame, spec: ModelConfig, capabilities: Capabilities | None = None) -> dict:
    """The task's metrics of an estimator on labelled rows.

    Args:
        estimator: a fitted estimator.
        frame: checked rows with the feature columns and the label column.
        spec: the model spec.
        capabilities: from ``check_estimator`` (checked here when not given).

    Returns:
        As ``score_predictions``.

    Raises:
        DataError: no rows.
        ConfigError: the estimator does not meet the spec.
    """
    if len(frame) == 0:
        raise DataError("cannot score a model on zero rows")
    caps = capabilities or check_estimator(estimator, spec, frame, type(estimator).__name__)
    return score_predictions(frame[spec.label.name].tolist(), predict_frame(estimator, frame, spec, caps), spec)
