"""The production rehearsal (issue 11, item 6; issue 20): the churn example with real traffic and a CRM feed.

On the local workspace: the churn app calls the model with each customer's features and
customerID through the day; in the evening the CRM delivers the day's outcomes (a CSV export per
day, or rows in its SQLite database); at 06:00 the production graph runs, the ground-truth job at
its head, then compute, evaluate, redeploy. From day 3 on, most DSL customers leave (a
competitor's offer): the model breaches, one redeploy retrains it on the new behaviour, and it
recovers. Day 6 brings the feed's ordinary mishaps: a re-sent export, an empty file, a malformed
line, outcomes committed late (for customers who came back the next day) and a future-dated row.
At the end every outcome is on its own prediction exactly once, and every stored window equals a
recomputation from the raw records.
"""

from __future__ import annotations

import contextlib
import csv
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cmlbase.clock import iso_ms
from monitoring.config.graph_rules import COMPUTE_ACCURACY_SCRIPT, EVALUATE_SCRIPT, GROUND_TRUTH_SCRIPT, REDEPLOY_SCRIPT
from monitoring.domain.data.requests import requests_of
from monitoring.domain.data.sources.schema import conform
from monitoring.workflows.accuracy import compute_accuracy
from monitoring.workflows.evaluate import evaluate_thresholds
from monitoring.workflows.ground_truth import RUN_KEY, ground_truth
from monitoring.workflows.redeploy import redeploy
from tests.chaos.label_checks import PostCounter
from tests.chaos.recompute import assert_windows_recomputed
from tests.integration.ground_truth_support import DAY, HOUR, labelled
from tests.integration.support import T0
from tests.project import Replace

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
#: Customers of day 5 whose outcomes the CRM commits late, who come back on day 6.
RETURNING = 10
#: Midnight (UTC) of the first simulated day: windows are days.
D0 = T0 - T0 % DAY + DAY
#: The CRM's database (the SQL feed): a table of outcomes stamped when they were recorded.
CRM_DB = "crm/crm.db"
SQL_FEED = {
    "ground_truth": {
        "source": Replace(
            kind="sql",
            url=f"sqlite:///{CRM_DB}",
            query="SELECT customerID, Churn, closed_at FROM outcomes WHERE closed_at >= :watermark ORDER BY closed_at",
            time_column="closed_at",
        ),
        "lateness": "2d",  # this CRM may commit an outcome up to a day after it was recorded
    }
}


def customers(root) -> pd.DataFrame:
    """The customers the app serves: the churn data's rows the first model was not trained on (seeded order)."""
    frame = pd.read_csv(root / "examples/churn/data/telco_customer_churn.csv", dtype=str, keep_default_na=False)
    return (
        frame.sample(frac=1.0, random_state=7).iloc[3000 : 3000 + (DAYS + 1) * CUSTOMERS_PER_DAY].reset_index(drop=True)
    )


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


class FileCrm:
    """The CRM of the shipped example: one CSV export a day under crm/."""

    def __init__(self, root: Path):
        self.dir = root / "crm"
        self.dir.mkdir(exist_ok=True)

    def export(self, name: str, rows: list[tuple[str, str, str]]) -> None:
        with (self.dir / name).open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["customerID", "Churn", "closed_at"])
            writer.writerows(rows)

    def day(self, day: int, rows: list[tuple[str, str, str]]) -> None:
        self.export(f"churn-outcomes-day{day}.csv", rows)


class SqlCrm:
    """The CRM's own SQLite database: each outcome a row stamped when it was recorded."""

    def __init__(self, root: Path):
        self.path = root / CRM_DB
        self.path.parent.mkdir(exist_ok=True)
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.execute("CREATE TABLE outcomes (customerID TEXT, Churn TEXT, closed_at TEXT)")

    def day(self, day: int, rows: list[tuple[str, str, str]]) -> None:
        with contextlib.closing(sqlite3.connect(self.path)) as db, db:
            db.executemany("INSERT INTO outcomes VALUES (?, ?, ?)", rows)


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


#: Six simulated days, a retrain, a build and a deployment: a few minutes alone, more on a loaded 2-core machine.
REHEARSAL_TIMEOUT_S = 900


@pytest.mark.timeout(REHEARSAL_TIMEOUT_S)
@pytest.mark.parametrize("feed", ["files", "sql"])
def test_churn_in_production_breaches_redeploys_once_recovers_and_posts_every_outcome_once(make_pipeline, feed):
    pipeline = make_pipeline(SQL_FEED if feed == "sql" else None, example="churn:production.yaml")
    root, ctx = pipeline.root, pipeline.ctx
    assert "simulate_traffic" not in {j.script for j in pipeline.cfg.jobs.graph}
    crm = SqlCrm(root) if feed == "sql" else FileCrm(root)
    posts = PostCounter(pipeline.ws.workspace_dir / "metrics.db", ctx.cfg.windows.label_key)
    people = customers(root)
    mapped = {"yes": "Yes", "no": "No"}
    sent: dict[str, str] = {}
    expected: dict[str, str] = {}
    runs = []
    held: list[tuple[str, str, str]] = []  # day 5 outcomes the CRM commits late
    for day in range(1, DAYS + 1):
        start = D0 + (day - 1) * DAY
        pipeline.ws.set_now(start + 6 * HOUR)
        runs.append(run_graph(pipeline))
        day_rows = people.iloc[(day - 1) * CUSTOMERS_PER_DAY : day * CUSTOMERS_PER_DAY]
        uuids = app_traffic(pipeline, day_rows, start + 8 * HOUR)
        sent.update(uuids)
        rows = [(c, o, iso_ms(start + 22 * HOUR)) for c, o in zip(day_rows["customerID"], outcomes(day_rows, day))]
        if day == DAYS:
            held, rows = (
                [(c, o, iso_ms(start + 21 * HOUR + 30 * 60_000)) for c, o, _ in rows[:RETURNING]],
                rows[RETURNING:],
            )
        crm.day(day, rows)
        expected.update({uuids[c]: mapped[o] for c, o in zip(day_rows["customerID"], outcomes(day_rows, day))})
    pipeline.ws.set_now(D0 + DAYS * DAY + 6 * HOUR)
    runs.append(run_graph(pipeline))

    truth = [r[GROUND_TRUTH_SCRIPT].fields for r in runs]
    assert [f["posted"] for f in truth] == [0] + [CUSTOMERS_PER_DAY] * (DAYS - 1) + [CUSTOMERS_PER_DAY - RETURNING]
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

    # day 6: the day 5 customers whose outcomes are held come back, with 390 new ones
    first, second = _day_six(pipeline, crm, people, held, sent, expected)
    assert first["posted"] + second["posted"] == CUSTOMERS_PER_DAY + RETURNING, (first, second)
    assert first["future_dated"] == 1 and first["watermark"] < iso_ms(D0 + 7 * DAY)
    if feed == "files":
        assert (first["duplicate"], first["bad_row"], first["empty_files"]) == (CUSTOMERS_PER_DAY - RETURNING, 1, 1)
        assert (second["bad_row"], second.get("empty_files")) == (0, None)
    else:  # the re-sent rows and those read before are counted once; the held ones were committed late
        assert (first["late"], first["duplicate"]) == (RETURNING, 0) and first["reread"] >= 2 * (
            CUSTOMERS_PER_DAY - RETURNING
        )

    # every outcome on its own prediction exactly once, read from the metrics store
    records = labelled(pipeline, T0, D0 + (DAYS + 2) * DAY)
    assert {u: m["final_label"] for u, m in records.items()} == expected
    assert posts.assert_none_twice() == len(expected)
    assert all(m[RUN_KEY] for m in records.values())
    assert len(sent) == (DAYS + 1) * CUSTOMERS_PER_DAY
    ledger_watermark = ctx.store.db.query_one("SELECT MAX(event_ms) FROM ground_truth_watermark")[0]
    assert ledger_watermark <= D0 + 7 * DAY  # the 2099 row never moved it
    # every stored window equals a recomputation from the raw records
    checked = assert_windows_recomputed(ctx.store, ctx.cfg, pipeline.ws.workspace_dir / "metrics.db", ctx.artifacts_dir)
    assert checked >= DAYS + 1


def _day_six(pipeline, crm, people: pd.DataFrame, held, sent: dict, expected: dict) -> tuple[dict, dict]:
    """Day 6's traffic and its feed's mishaps; the graph's runs of day 7 at 06:00 and, once the CRM has
    fixed and finished its exports, at noon.

    Returns:
        The VERDICT fields of the two ground-truth runs.
    """
    day, start = DAYS + 1, D0 + DAYS * DAY
    back = people[people["customerID"].isin([c for c, _, _ in held])]
    new = people.iloc[DAYS * CUSTOMERS_PER_DAY : (DAYS + 1) * CUSTOMERS_PER_DAY - RETURNING]
    day_rows = pd.concat([back, new], ignore_index=True)
    uuids = app_traffic(pipeline, day_rows, start + 8 * HOUR)
    sent.update({(f"{c}@{day}" if c in sent else c): u for c, u in uuids.items()})
    closed = iso_ms(start + 22 * HOUR)
    rows = [(c, o, closed) for c, o in zip(day_rows["customerID"], outcomes(day_rows, day))]
    expected.update({uuids[c]: {"yes": "Yes", "no": "No"}[o] for c, o, _ in rows})  # day 6's on day 6's predictions
    typo = (rows[20][0], rows[20][1], "2099-01-01T00:00:00Z")  # a copy of one outcome, its date mistyped
    # the held day 5 outcomes come with day 6's (dated day 5: committed late), for customers who came back today
    if isinstance(crm, FileCrm):
        crm.export("churn-outcomes-day5-resent.csv", _read_back(crm, 5))  # the CRM sends day 5 again
        crm.day(day, held + rows[:300] + [typo])
        (crm.dir / "churn-outcomes-day6-rest.csv").write_bytes(b"")  # still being written at 06:00
        export = crm.dir / f"churn-outcomes-day{day}.csv"
        fixed = export.read_text()
        lines = fixed.splitlines()
        lines[5] = lines[5].replace(",", ",moved, ", 1)  # an unquoted comma: four fields on line 6
        export.write_text("\n".join(lines) + "\n")
    else:
        crm.day(5, _day5_rows_again(crm))  # the CRM re-sends day 5's rows
        crm.day(day, rows[:300] + [typo] + held)  # held: stamped 21:30 on day 5, committed a day later
    pipeline.ws.set_now(start + DAY + 6 * HOUR)
    first = run_graph(pipeline)[GROUND_TRUTH_SCRIPT].fields
    if isinstance(crm, FileCrm):
        export.write_text(fixed)  # the CRM fixes the line and finishes the export
        crm.export("churn-outcomes-day6-rest.csv", rows[300:])
    else:
        crm.day(day, rows[300:])
    pipeline.ws.set_now(start + DAY + 12 * HOUR)
    second = run_graph(pipeline)[GROUND_TRUTH_SCRIPT].fields
    return first, second


def _read_back(crm: FileCrm, day: int) -> list[list[str]]:
    with (crm.dir / f"churn-outcomes-day{day}.csv").open(newline="") as fh:
        return list(csv.reader(fh))[1:]


def _day5_rows_again(crm: SqlCrm) -> list[tuple[str, str, str]]:
    with contextlib.closing(sqlite3.connect(crm.path)) as db:
        latest = db.execute("SELECT MAX(closed_at) FROM outcomes").fetchone()[0]
        return db.execute("SELECT customerID, Churn, closed_at FROM outcomes WHERE closed_at = ?", (latest,)).fetchall()
