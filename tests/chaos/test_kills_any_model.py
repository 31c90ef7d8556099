"""SIGKILLed traffic runs of the example models (a replayed data set; numeric, categorical and missing
features, a class or a number as label): every answered prediction still gets its own row's label,
and no label is posted twice.

Each example's ``simulate_traffic`` runs as a real process against a real local workspace, slowed
by its standing latency, and is SIGKILLed while it sends; the runs after it resolve the dead run's
intents. Each prediction record is matched to its row of the replay by its tracked features.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections import defaultdict

import pytest

from monitoring.core.errors import EXIT_OK
from monitoring.domain.data.replay import read_plan
from monitoring.domain.data.requests import requests_of, values_key
from monitoring.domain.records.keys import UUID_KEY
from monitoring.state.label_queue import label_value
from tests.chaos.label_checks import PostCounter
from tests.chaos.runs import kill_at, run_to_end
from tests.integration.support import SMALL_REPLAYS

pytestmark = pytest.mark.slow

LATENCY = ("latency.model=delay:10ms always", "latency.metrics=delay:10ms always")


def _count_records(pipeline) -> int:
    uri = f"file:{pipeline.ws.metrics_store.db.path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        return int(db.execute("SELECT COUNT(*) FROM model_metrics WHERE prediction_uuid <> ''").fetchone()[0])


@pytest.mark.parametrize("example", ["churn", "housing", "credit"])
def test_a_traffic_run_killed_while_it_sends_loses_and_doubles_no_label_of_any_example(make_pipeline, example):
    pipeline = make_pipeline(SMALL_REPLAYS[example], example=example)
    cfg = pipeline.cfg
    pipeline.ws.faults.add(*LATENCY)
    smoke = {r[UUID_KEY] for r in pipeline.predictions()}  # the bootstrap's call of the new deployment
    posts = PostCounter(pipeline.ws.metrics_store.db.path, cfg.windows.label_key)
    pipeline.ctx.store.close()  # the job processes write the state store

    pipeline.at_cycle(1)
    before = _count_records(pipeline)
    code, out = kill_at(pipeline, "simulate_traffic", lambda pid, s: _count_records(pipeline) >= before + 40, "sending")
    assert code is None, f"the run ended before it was killed:\n{out[-3000:]}"
    recovered = 0
    for cycle in (2, 3, 4):
        pipeline.at_cycle(cycle)
        code, out = run_to_end(pipeline, "simulate_traffic")
        assert code == EXIT_OK, out[-3000:]
        recovered += sum(int(f.split("=")[1]) for f in out.split() if f.startswith("labels_recovered="))
    assert recovered > 0, out[-3000:]  # the killed run's answered requests
    pipeline.reopen()

    # each record is one row's prediction: its label is on it or queued, and it is that row's label
    plan = read_plan(pipeline.cfg.data.replay, pipeline.cfg.model, pipeline.ctx.project_root)
    names = tuple(cfg.model.feature_names)
    rows: dict[object, list] = defaultdict(list)
    for request, label in zip(requests_of(plan.rows, cfg.model), plan.labels(cfg.model)):
        rows[values_key(request, names)].append(label)
    queued = {str(u): label_value(y) for u, y in pipeline.ctx.store.db.query("SELECT uuid, label FROM pending_labels")}
    checked = 0
    for rec in pipeline.predictions():
        if rec[UUID_KEY] in smoke:
            continue
        label = rec["metrics"].get(cfg.windows.label_key, queued.get(rec[UUID_KEY]))
        assert label is not None, f"prediction {rec[UUID_KEY]} has no label on its record and none queued"
        row_labels = rows[values_key(rec["metrics"][cfg.windows.features_key], names)]
        assert label in row_labels, f"prediction {rec[UUID_KEY]}: label {label!r}, its row's: {row_labels}"
        checked += 1
    assert checked >= 3 * 100
    assert posts.assert_none_twice() > 0
