"""Predictions tracked with a business key on the local workspace, and CRM label files, for the ground-truth tests."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from monitoring.domain.data.scenario import TelcoScenario
from monitoring.workflows.ground_truth import RUN_KEY

HOUR = 3_600_000
DAY = 24 * HOUR
#: The ground-truth config the tests share: a CRM export per day, keyed by customer_id.
GROUND_TRUTH = {
    "model": {
        "label": {"name": "cell_tower_failure", "classes": [0, 1], "mapping": {"yes": 1, "no": 0}},
    },
    "ground_truth": {
        "source": {"kind": "csv", "path": "crm/*.csv", "time_column": "closed_at"},
        "key": "customer_id",
        "label_column": "failed",
        "lookback": "2d",
        "chunk_rows": 7,
        "samples": 3,
    },
}


def predict_for(pipeline, customers: list[str], seed: int = 0) -> dict[str, str]:
    """Send one request per customer (features drawn from the scenario, plus ``customer_id``); customer -> uuid."""
    frame = TelcoScenario().generate(len(customers), np.random.default_rng(seed))
    ctx = pipeline.ctx
    endpoint = ctx.platform.endpoint(ctx.require_model(), 10.0)
    uuids = {}
    try:
        for customer, row in zip(customers, frame[ctx.cfg.model.feature_names].to_dict("records")):
            _, uuid = endpoint.predict({**row, "customer_id": customer})
            uuids[customer] = uuid
    finally:
        endpoint.close()
    return uuids


def write_crm(root: Path, name: str, rows: list[dict[str, Any]]) -> Path:
    """A CRM export: customer_id, failed (yes/no or anything), closed_at (ISO-8601)."""
    path = root / "crm" / name
    path.parent.mkdir(exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["customer_id", "failed", "closed_at"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def labelled(pipeline, start_ms: int, end_ms: int) -> dict[str, dict[str, Any]]:
    """uuid -> metrics of every record of the model's deployments that holds a label."""
    ctx = pipeline.ctx
    out = {}
    for dep in ctx.store.deployments(ctx.cfg.model.name):
        for r in ctx.platform.metrics.read(dep.deployment_crn, start_ms, end_ms):
            if r.get("predictionUuid") and ctx.cfg.windows.label_key in r["metrics"]:
                out[r["predictionUuid"]] = r["metrics"]
    return out


def posted_by(records: dict[str, dict[str, Any]]) -> dict[str, str]:
    """uuid -> the run that posted its label."""
    return {u: m.get(RUN_KEY) for u, m in records.items()}
