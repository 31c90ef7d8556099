"""The metric registry, where the domain reads it (it lives in ``core`` so that config can check metrics by task)."""

from monitoring.config.metric_registry import (
    BOOTSTRAP,
    METRICS,
    T_MEAN,
    WILSON,
    Direction,
    MetricSpec,
    Task,
    metric_spec,
    task_metrics,
)

__all__ = [
    "BOOTSTRAP",
    "METRICS",
    "T_MEAN",
    "WILSON",
    "Direction",
    "MetricSpec",
    "Task",
    "metric_spec",
    "task_metrics",
]
