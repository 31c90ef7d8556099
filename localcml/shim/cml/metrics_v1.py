"""``cml.metrics_v1`` for the local workspace: the newer name of the cdsw metrics functions."""

from localcml.metrics.sdk import (
    dev_model_deployment_crn,
    read_metrics,
    track_aggregate_metrics,
    track_delayed_metrics,
    track_metric,
)

__all__ = [
    "track_metric",
    "track_delayed_metrics",
    "track_aggregate_metrics",
    "read_metrics",
    "dev_model_deployment_crn",
]
