"""Case (g): labels from a business system joined to logged predictions by a business key, and posted.

Steps, each in its own process: bootstrap v1 on a local workspace; ``fill`` stores two sets of N
unlabelled predictions that track a ``customer_id`` (the seed's set, then ours, 10 days each) and
writes each set's CRM file (key, outcome, closing time); ``seed`` does what a hand-written script
would: one ``read_metrics`` over its days, a key -> newest uuid dict, ``pandas.read_csv``, then one
``track_delayed_metrics`` per row, in order; ``ours`` builds the Context as the job does and runs
the ground_truth workflow (chunked reading, ledger, concurrent posts). Ours looks back 10 days
and 2 hours, so it reads only its own set. Each side then counts the labels on its records that equal the file's.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

from bench.accuracy_case import metrics_url
from bench.dataset import DAY_MS, Spec, blocks, metrics_texts
from bench.measure import measured
from bench.workspace import HOUR_MS, T0, context

DAYS = 10.0
SEED_START_MS = T0 + HOUR_MS
OURS_START_MS = SEED_START_MS + int(DAYS * DAY_MS) + DAY_MS
#: The clock during the runs: an hour after ours' last prediction.
NOW_MS = OURS_START_MS + int(DAYS * DAY_MS) + HOUR_MS
KEY = "customer_id"
LABEL_COLUMN = "outcome"
TIME_COLUMN = "closed_at"
#: Where each side's CRM file is written, relative to the project (ours: the configured glob).
FILES = {"seed": "crm/seed-outcomes.csv", "ours": "crm/outcomes-0001.csv"}
#: The ``ground_truth:`` section the case's project runs with.
GROUND_TRUTH = {
    "source": {"kind": "csv", "path": "crm/outcomes-*.csv", "time_column": TIME_COLUMN},
    "key": KEY,
    "label_column": LABEL_COLUMN,
    "lookback": "242h",  # ours' set and an hour before it; the seed's set ends a day before it
    "stale_scan": "0s",
}


def posts_in_parallel() -> int:
    """``ground_truth.concurrency`` as shipped (the case runs with it)."""
    from monitoring.config.ground_truth import GroundTruthConfig

    return GroundTruthConfig.model_fields["concurrency"].default


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _write_set(store, root: Path, side: str, spec: Spec, crns: dict) -> int:
    """Store one side's unlabelled predictions and write its CRM file (rows in closing-time order)."""
    path = root / FILES[side]
    path.parent.mkdir(parents=True, exist_ok=True)
    written, first = 0, 0
    with open(path, "w", newline="") as out:
        rows = csv.writer(out)
        rows.writerow([KEY, LABEL_COLUMN, TIME_COLUMN])
        for block in blocks(spec):
            truth = block["label"]
            block["label"] = [None] * len(truth)  # the labels are in the file, not on the records
            keys = [f"{side}-{first + i:08d}" for i in range(len(truth))]
            texts = [f'{{"{KEY}":"{k}",' + t[1:] for k, t in zip(keys, metrics_texts(block))]
            written += store.bulk_insert(
                (crns["deployment_crn"], crns["build_crn"], crns["model_crn"], u, s, e, t)
                for u, s, e, t in zip(block["uuid"], block["start"], block["end"], texts)
            )
            # every prediction's outcome, also those the records' generator left unlabelled
            outcomes = [y if y is not None else p for y, p in zip(truth, block["prediction"])]
            rows.writerows((k, y, _iso(s + HOUR_MS)) for k, y, s in zip(keys, outcomes, block["start"]))
            first += len(truth)
    return written


def fill(params: dict) -> dict:
    """Store both sets of ``n`` predictions and write their files; returns the counts."""
    from localcml.metrics.store import MetricsStore

    root, n = Path(params["root"]), int(params["n"])
    store = MetricsStore(metrics_url(root))
    with measured() as m:
        seed = _write_set(store, root, "seed", Spec(n, SEED_START_MS, DAYS, 11), params)
        ours = _write_set(store, root, "ours", Spec(n, OURS_START_MS, DAYS, 12), params)
    store.close()
    return {**m.to_dict(), "seed_records": seed, "ours_records": ours}


def _agreeing(ctx, start_ms: int, end_ms: int, expected: dict[str, str]) -> int:
    """Records in the range whose label equals the file's outcome for their key."""
    label_key, chunk = ctx.cfg.windows.label_key, DAY_MS
    agree = 0
    crn = ctx.require_live(ctx.require_model()).crn
    for _, _, records in ctx.platform.metrics.read_chunks(crn, start_ms, end_ms, chunk):
        for r in records:
            metrics = r.get("metrics") or {}
            if str(metrics.get(label_key)) == expected.get(str(metrics.get(KEY))):
                agree += 1
    return agree


def _expected(root: Path, side: str) -> dict[str, str]:
    with open(root / FILES[side], newline="") as f:
        return {row[KEY]: row[LABEL_COLUMN] for row in csv.DictReader(f)}


def seed(params: dict) -> dict:
    """A hand-written script: read_metrics, a key -> newest uuid dict, read_csv, sequential posts."""
    import pandas as pd

    from monitoring.cmlclient import cml

    root = Path(params["root"])
    ctx = context(root)
    cdsw = cml.sdk()
    crn = ctx.require_live(ctx.require_model()).crn
    label_key = ctx.cfg.windows.label_key
    posted = 0
    with measured() as m:
        records = cdsw.read_metrics(
            model_deployment_crn=crn, start_timestamp_ms=SEED_START_MS, end_timestamp_ms=OURS_START_MS - 1
        )["metrics"]
        newest: dict[str, tuple[int, str]] = {}
        for r in records:
            key = (r.get("metrics") or {}).get(KEY)
            if key is not None and (key not in newest or r["startTimeStampMs"] > newest[key][0]):
                newest[key] = (r["startTimeStampMs"], r["predictionUuid"])
        frame = pd.read_csv(root / FILES["seed"], dtype={KEY: str})
        for key, outcome in zip(frame[KEY], frame[LABEL_COLUMN]):
            if key in newest:
                cdsw.track_delayed_metrics({label_key: int(outcome)}, newest[key][1])
                posted += 1
    agree = _agreeing(ctx, SEED_START_MS, OURS_START_MS - 1, _expected(root, "seed"))
    return {**m.to_dict(), "posted": posted, "agree": agree}


def ours(params: dict) -> dict:
    """The ground_truth workflow as the job runs it; the peak is the whole run's."""
    from monitoring.workflows.ground_truth import ground_truth

    root = Path(params["root"])
    with measured() as m:
        ctx = context(root)
        outcome = ground_truth(ctx)
    agree = _agreeing(ctx, OURS_START_MS, NOW_MS, _expected(root, "ours"))
    return {**m.to_dict(), "summary": outcome.summary, "posted": outcome.fields.get("posted"), "agree": agree}
