"""A replay whose labels come later than ``windows.label_horizon``: every label is still counted (issue 19).

The credit example, replayed at a third of its speed (10 days of applications per pipeline hour,
``speed: 240``): each outcome is known 14 to 30 days after its application (``label_time``), 84 to
180 minutes of pipeline time, often three hourly runs later. Here the horizon is 15 minutes, shorter
than every label's lag, so a routine run re-reads only the windows of the last two runs. Nothing
is lost:
a replay's labels go through the state store's label queue, a window with labels posted since it
was last read is read again whatever its age, and a settled window's aggregate is held while
labels of it are queued (docs/configuration.md, ``windows.label_horizon``).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3

from monitoring.core.durations import to_ms
from monitoring.domain.windows.results import window_start
from tests.chaos.recompute import assert_windows_recomputed, raw_records
from tests.project import FAST, merge

SHORT_HORIZON = merge(
    FAST,
    {
        "data": {"replay": {"speed": 240}},
        "scenario": {"label_delay": "10m"},  # the synthetic scenario's, unused by a replay
        "windows": {"label_horizon": "15m"},
        "thresholds": {"policies": [{"kind": "min_labelled", "min": 1000}]},  # judge only, never redeploy
    },
)


def aggregates(metrics_db) -> dict[int, dict]:
    """The window aggregates sent to the metrics store, by window start."""
    with contextlib.closing(sqlite3.connect(f"file:{metrics_db}?mode=ro", uri=True)) as db:
        rows = db.execute("SELECT start_ms, metrics FROM model_metrics WHERE prediction_uuid = ''").fetchall()
    return {int(start): json.loads(metrics) for start, metrics in rows}


def test_a_replays_labels_later_than_the_horizon_are_all_counted_in_their_windows(make_pipeline):
    pipeline = make_pipeline(SHORT_HORIZON, example="credit")
    ctx, cfg = pipeline.ctx, pipeline.cfg
    window_ms = cfg.windows.length_ms
    assert to_ms(cfg.windows.label_horizon) == 15 * 60_000
    for cycle in range(1, 8):
        pipeline.cycle(cycle, redeploy_too=False)
    # a run sends the rows whose time has come since the last one: a label falls due up to 180 minutes
    # after its prediction is recorded (sent at its event time), or sooner (sent later than its event);
    # those due more than two runs later land in a window no routine run reads again
    lags = [due - answered for answered, due in ctx.store.db.query("SELECT answered_ms, due_ms FROM pending_labels")]
    beyond_two_runs = [lag for lag in lags if lag > 2 * window_ms]
    assert len(lags) > 300 and len(beyond_two_runs) > 30, (len(lags), len(beyond_two_runs))
    metrics_db = pipeline.ws.metrics_store.db.path
    labelled = [r for r in raw_records(metrics_db) if cfg.windows.label_key in r["metrics"]]
    # the stored windows hold every label that landed in them, as a recomputation from the records does
    assert assert_windows_recomputed(ctx.store, cfg, metrics_db, ctx.artifacts_dir) >= 4
    (dep,) = ctx.store.deployments(cfg.model.name)
    stored = {w.start_ms: w for w in ctx.store.windows(deployment_crn=dep.deployment_crn)}
    in_stored = [r for r in labelled if window_start(r["startTimeStampMs"], window_ms) in stored]
    assert sum(w.labelled for w in stored.values()) == len(in_stored) > 150
    # and the aggregates sent to CML: each settled window once, with all of its labels
    sent = aggregates(metrics_db)
    assert len(sent) >= 3
    assert all(sent[start]["labelled"] == stored[start].labelled > 0 for start in sent), (sent, stored)
