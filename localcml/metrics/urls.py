"""Routes of the model metrics service, served at ``http://monitoring.<CDSW_DOMAIN>``: path -> handler of ``MetricsApi``.

The paths are those of Cloudera's SDK talking to CML's monitoring service. ``LATENCY_EXEMPT``
names the call a model replica makes while it serves (writing its prediction's record), which a
rehearsed client round trip (``latency.metrics``) does not delay.
"""

ROUTES = {
    "/track-metrics": "track_metrics",
    "/track-delayed-metrics": "track_delayed_metrics",
    "/track-aggregate-metrics": "track_aggregate_metrics",
    "/read-metrics": "read_metrics",
}
LATENCY_EXEMPT = ("/track-metrics",)
