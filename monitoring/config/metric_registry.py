"""The registry of the task's quality metrics: task, direction (floor or ceiling), range, statistical bound, headline."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import get_args

from monitoring.config.model_spec import Task
from monitoring.core.errors import DataError

#: Every task a model may have (``model.task``).
TASKS: tuple[Task, ...] = get_args(Task)


class Direction(str, Enum):
    """Which way is better, hence the kind of limit a policy sets."""

    HIGHER = "higher"  # a floor: quality (accuracy, F1, R²)
    LOWER = "lower"  # a ceiling: error (MAE, RMSE, log-loss)
    ZERO = "zero"  # a band around zero: bias, whose limit applies to |value|


WILSON, T_MEAN, BOOTSTRAP = "wilson", "t", "bootstrap"


@dataclass(frozen=True)
class MetricSpec:
    """What a metric measures and how its uncertainty is bounded.

    Attributes:
        name: the metric's key in tables, config and the state store.
        task: the task it belongs to.
        direction: which way is better.
        low: smallest possible value.
        high: largest possible value (``math.inf`` when unbounded).
        bound: how ``domain.metrics.bounds`` bounds it: ``wilson`` (a proportion), ``t`` (a mean of
            per-row values) or ``bootstrap`` (resampled; no closed form fits).
        multiclass_bound: the method for more than two classes, when it differs (macro averages
            are no longer proportions).
        needs_probabilities: computed only when the model's probabilities are tracked.
        description: one line for people.
    """

    name: str
    task: Task
    direction: Direction
    low: float
    high: float
    bound: str
    description: str
    multiclass_bound: str | None = None
    needs_probabilities: bool = False

    def bound_method(self, n_classes: int = 2) -> str:
        """The bounding method for a model with ``n_classes`` classes (ignored for regression)."""
        return self.multiclass_bound if n_classes > 2 and self.multiclass_bound else self.bound


_C, _R = TASKS
_UP, _DOWN = Direction.HIGHER, Direction.LOWER
#: Every metric, by name, in the order tables list them.
METRICS: Mapping[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("accuracy", _C, _UP, 0.0, 1.0, WILSON, "share of labelled predictions that were right"),
        MetricSpec("precision", _C, _UP, 0.0, 1.0, WILSON, "positive class (binary) or macro average", BOOTSTRAP),
        MetricSpec("recall", _C, _UP, 0.0, 1.0, WILSON, "positive class (binary) or macro average", BOOTSTRAP),
        MetricSpec("f1", _C, _UP, 0.0, 1.0, BOOTSTRAP, "positive class (binary) or macro average"),
        MetricSpec("roc_auc", _C, _UP, 0.0, 1.0, BOOTSTRAP, "ROC AUC (binary) or one-vs-rest macro", None, True),
        MetricSpec("log_loss", _C, _DOWN, 0.0, math.inf, T_MEAN, "mean cross-entropy, natural log", None, True),
        MetricSpec("mae", _R, _DOWN, 0.0, math.inf, T_MEAN, "mean absolute error"),
        MetricSpec("rmse", _R, _DOWN, 0.0, math.inf, T_MEAN, "root mean squared error (bounded through the MSE)"),
        MetricSpec(
            "mape", _R, _DOWN, 0.0, math.inf, T_MEAN, "mean |error| / |target| (a fraction), y = 0 rows skipped"
        ),
        MetricSpec("r2", _R, _UP, -math.inf, 1.0, BOOTSTRAP, "coefficient of determination"),
        MetricSpec("bias", _R, Direction.ZERO, -math.inf, math.inf, T_MEAN, "mean error, mean(prediction - target)"),
    )
}


def metric_spec(name: str) -> MetricSpec:
    """The registry entry of ``name``.

    Raises:
        DataError: unknown metric (the message lists the known ones).
    """
    try:
        return METRICS[name]
    except KeyError:
        raise DataError(f"unknown metric {name!r} (known: {', '.join(METRICS)})") from None


def _known(task: str) -> Task:
    """``task`` itself, checked.

    Raises:
        DataError: unknown task.
    """
    if task not in TASKS:
        raise DataError(f"unknown task {task!r} (expected one of: {', '.join(TASKS)})")
    return task


def task_metrics(task: str, probabilities: bool = False) -> tuple[str, ...]:
    """Names of the metrics of ``task``; the probability-based ones only when ``probabilities``.

    Raises:
        DataError: unknown task.
    """
    task = _known(task)
    return tuple(m.name for m in METRICS.values() if m.task == task and (probabilities or not m.needs_probabilities))


#: The metric a task's model or window is summed up by when the config names none.
DEFAULT_HEADLINE: Mapping[Task, str] = {"classification": "accuracy", "regression": "mae"}


def headline_metric(task: str, named: str | None = None) -> str:
    """The metric a model or a window is summed up by: ``named`` (what the config names: a policy's
    metric, ``retraining.metric``), else the task's default (accuracy, MAE).

    Raises:
        DataError: unknown task.
    """
    return named or DEFAULT_HEADLINE[_known(task)]


def metric_task_problem(metric: str, task: str, key: str) -> str | None:
    """The problem with using ``metric`` for a model of ``task``, naming the config ``key`` (None: none).

    Args:
        metric: a metric name of the registry.
        task: ``model.task``.
        key: the dotted config key (or flag) that names the metric.

    Raises:
        DataError: unknown metric or task.
    """
    spec = metric_spec(metric)
    task = _known(task)
    if spec.task == task:
        return None
    allowed = ", ".join(task_metrics(task, probabilities=True))
    return f"{key}: {metric!r} is a {spec.task} metric, but model.task is {task} (use one of: {allowed})"
