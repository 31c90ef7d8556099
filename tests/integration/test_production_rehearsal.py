"""The production rehearsal (issue 11, item 6): the churn example with real traffic and a CRM export per day.

On the local workspace: the churn app calls the model with each customer's features and
customerID through the day; in the evening the CRM drops the day's outcomes; at 06:00 the
production graph runs, the ground-truth job at its head, then compute, evaluate, redeploy. From
day 3 on, most DSL customers leave (a competitor's offer): the model breaches, one redeploy
retrains it on the new behaviour, and it recovers. Every outcome is posted exactly once.
"""

from __future__ import annotations

import csv
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

from monitoring.config.graph_rules import COMPUTE_ACCURACY_SCRIPT, EVALUATE_SCRIPT, GROUND_TRUTH_SCRIPT, REDEPLOY_SCRIPT
from monitoring.core.clock import iso_ms
from monitoring.domain.data.requests import requests_of
from monitoring.domain.data.sources.schema import conform
from monitoring.workflows.accuracy import compute_accuracy
from monitoring.workflows.evaluate import evaluate_thresholds
from monitoring.workflows.ground_truth import RUN_KEY, ground_truth
from monitoring.workflows.redeploy import redeploy
from tests.integration.ground_truth_support import DAY, HOUR, labelled
from tests.integration.support import T0

WORKFLOWS = {
    GROUND_TRUTH_SCRIPT: ground_truth,
    COMPUTE_ACCURACY_SCRIPT: compute_accuracy,
    EVALUATE_SCRIPT: evaluate_thresholds,
    REDEPLOY_SCRIPT: redeploy,
}
CUSTOMERS_PER_DAY = 400
DRIFT_DAY = 3
DAYS = 5
WORKING_HOURS = 12
#: Midnight (UTC) of the first simulated day: windows are days.
D0 = T0 - T0 % DAY + DAY


def customers(root) -> pd.DataFrame:
    """The customers the app serves: the churn data's rows the first model was not trained on (seeded order)."""
    frame = pd.read_csv(root / "examples/churn/data/telco_customer_churn.csv", dtype=str, keep_default_na=False)
    return frame.sample(frac=1.0, random_state=7).iloc[3000 : 3000 + DAYS * CUSTOMERS_PER_DAY].reset_index(drop=True)


def outcomes(day_rows: pd.DataFrame, day: int) -> list[str]:
    """What the CRM records: the data's outcome; from DRIFT_DAY on, 80% of DSL customers leave."""
    churn = day_rows["Churn"].str.lower().tolist()
    if day < DRIFT_DAY:
        return churn
    leave = np.random.default_rng(day).random(len(day_rows)) < 0.8
    return ["yes" if dsl and go else c for c, dsl, go in zip(churn, day_rows["InternetService"] == "DSL", leave)]


def app_traffic(pipeline, day_rows: pd.DataFrame, start_ms: int) -> dict[str, str]:
    """The churn app: one request per customer (features and customerID), an hour's customers at a time."""
    ctx = pipeline.ctx
    spec = ctx.cfg.model
    requests = requests_of(conform(day_rows, spec, "the app's customers"), spec)
    bodies = [{**r, "customerID": c} for r, c in zip(requests, day_rows["customerID"])]
    endpoint = ctx.platform.endpoint(ctx.require_model(), 30.0)
    uuids = []
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            for hour in range(WORKING_HOURS):
                pipeline.ws.set_now(start_ms + hour * HOUR)
                batch = bodies[hour::WORKING_HOURS]
                uuids += [(b["customerID"], uuid) for b, (_, uuid) in zip(batch, pool.map(endpoint.predict, batch))]
    finally:
        endpoint.close()
    return dict(uuids)


def crm_export(root, day: int, day_rows: pd.DataFrame, closed_ms: int) -> None:
    path = root / "crm" / f"churn-outcomes-day{day}.csv"
    path.parent.mkdir(exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["customerID", "Churn", "closed_at"])
        for customer, outcome in zip(day_rows["customerID"], outcomes(day_rows, day)):
            writer.writerow([customer, outcome, iso_ms(closed_ms)])


def run_graph(pipeline) -> dict[str, object]:
    """The production graph as CML runs it: the head, then each dependent after its parent succeeded."""
    graph = pipeline.cfg.jobs.graph
    job = next(j for j in graph if j.parent is None)
    assert job.script == GROUND_TRUTH_SCRIPT and job.schedule
    out = {}
    while job is not None:
        out[job.script] = WORKFLOWS[job.script](pipeline.ctx)
        job = next((j for j in graph if j.parent == job.name), None)
    return out


def test_churn_in_production_breaches_redeploys_once_recovers_and_posts_every_outcome_once(make_pipeline):
    pipeline = make_pipeline(example="churn:production.yaml")
    root, ctx = pipeline.root, pipeline.ctx
    assert "simulate_traffic" not in {j.script for j in pipeline.cfg.jobs.graph}
    people = customers(root)
    sent: dict[str, str] = {}
    expected: dict[str, str] = {}
    runs = []
    for day in range(1, DAYS + 1):
        start = D0 + (day - 1) * DAY
        pipeline.ws.set_now(start + 6 * HOUR)
        runs.append(run_graph(pipeline))
        day_rows = people.iloc[(day - 1) * CUSTOMERS_PER_DAY : day * CUSTOMERS_PER_DAY]
        uuids = app_traffic(pipeline, day_rows, start + 8 * HOUR)
        sent.update(uuids)
        crm_export(root, day, day_rows, start + 22 * HOUR)
        mapped = {"yes": "Yes", "no": "No"}
        expected.update({uuids[c]: mapped[o] for c, o in zip(day_rows["customerID"], outcomes(day_rows, day))})
    pipeline.ws.set_now(D0 + DAYS * DAY + 6 * HOUR)
    runs.append(run_graph(pipeline))

    truth = [r[GROUND_TRUTH_SCRIPT].fields for r in runs]
    assert [f["posted"] for f in truth] == [0] + [CUSTOMERS_PER_DAY] * DAYS
    assert all(f.get("unknown_key", 0) == 0 and f.get("bad_label", 0) == 0 for f in truth)
    decisions = [r[EVALUATE_SCRIPT].fields["decision_action"] for r in runs]
    outcomes_ = [r[REDEPLOY_SCRIPT].status for r in runs]
    summaries = [r[EVALUATE_SCRIPT].summary for r in runs]
    # days 1 and 2 are healthy; day 3's outcomes breach on day 4's run; one redeploy; days 4 and 5 (v2) recover
    assert decisions == ["insufficient_data", "none", "none", "redeploy", "none", "none"], summaries
    assert outcomes_ == ["no_action"] * 3 + ["deployed"] + ["no_action"] * 2, [r[REDEPLOY_SCRIPT].summary for r in runs]
    versions = [r[EVALUATE_SCRIPT].fields["version"] for r in runs]
    assert versions[3:] == ["v1", "v2", "v2"]
    accuracy = {w.start_ms: w.accuracy for w in ctx.store.windows(model=ctx.cfg.model.name) if w.labelled}
    assert accuracy[D0 + 2 * DAY] < 0.72 <= min(accuracy[D0 + 3 * DAY], accuracy[D0 + 4 * DAY]), accuracy

    # every outcome posted exactly once, read from the metrics store
    records = labelled(pipeline, T0, D0 + (DAYS + 1) * DAY)
    assert {u: m["final_label"] for u, m in records.items()} == expected
    posters = {f["report"] for f in truth}
    assert len(posters) == len(truth)  # each run wrote its own report
    assert all(m[RUN_KEY] for m in records.values())
    assert len(sent) == DAYS * CUSTOMERS_PER_DAY
