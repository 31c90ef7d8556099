"""A traffic run that died leaves its labels as intents; the next run queues the label of each request
the model answered. Requests are matched to their records by the features tracked, which for the
example models are numbers, categories (text) and missing values."""

from __future__ import annotations

import pytest

from monitoring.domain.data.replay import read_plan
from monitoring.domain.data.requests import requests_of
from monitoring.state.label_queue import label_value
from monitoring.workflows.labels import recover_intents

#: A run whose holder is on another host and holds no lease: dead, as far as this store knows.
DEAD_RUN = "simulate_traffic@elsewhere:2:0f0f0f"
ROWS = 12


@pytest.mark.parametrize("example", ["churn", "housing", "credit"])
def test_a_dead_runs_answered_requests_get_their_rows_labels_whatever_the_feature_kinds(make_pipeline, example):
    pipeline = make_pipeline(example=example)
    ctx, cfg = pipeline.ctx, pipeline.cfg
    now = pipeline.at_cycle(1)
    plan = read_plan(ctx.cfg.data.replay, ctx.cfg.model, ctx.project_root)
    requests = requests_of(plan.rows.iloc[:ROWS], cfg.model)
    labels = plan.labels(cfg.model)[:ROWS]
    categorical = [n for n in cfg.model.feature_names if cfg.model.kinds[n] != "numeric"]
    assert categorical and all(isinstance(r[n], str | None) for r in requests for n in categorical)
    model = ctx.require_model()
    live = ctx.require_live(model)
    queue = ctx.store.label_queue
    queue.intend(DEAD_RUN, live.crn, [(i, r, y, 60_000, None) for i, (r, y) in enumerate(zip(requests, labels))], now)
    endpoint = ctx.platform.endpoint(model, 30.0)
    try:  # the dead run's requests: the last two never left
        answered = [endpoint.predict(r)[1] for r in requests[:-2]]
    finally:
        endpoint.close()
    assert queue.orphaned_runs() == [DEAD_RUN]

    assert recover_intents(ctx) == ROWS - 2
    rows = ctx.store.db.query("SELECT uuid, label FROM pending_labels")
    assert {str(u): label_value(y) for u, y in rows} == dict(zip(answered, labels))
    assert queue.intents() == []
