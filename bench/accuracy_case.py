"""Case (b): the real compute_accuracy job over N stored predictions (10 simulated days), then 1% more.

Steps, each in its own process: bootstrap v1 on a local workspace; bulk-load N records under the
live deployment's CRN; run the job (full: every window since the deployment); load 1% more
records after them; run the job again (incremental: new records plus the label horizon).
"""

from __future__ import annotations

from pathlib import Path

from bench.dataset import DAY_MS, Spec, store_rows
from bench.measure import measured
from bench.workspace import HOUR_MS, T0, context

#: The stored history starts one hour after the deployment and covers this many days.
DAYS = 10.0
DATA_START_MS = T0 + HOUR_MS
DATA_END_MS = DATA_START_MS + int(DAYS * DAY_MS)
#: Share of the history added before the incremental run (and the simulated time it covers).
NEW_SHARE = 0.01
SQLITE_LOAD_CACHE_KB = 1_000_000


def metrics_url(root: Path) -> str:
    """The workspace's metrics store URL, as the daemon resolves it."""
    from monitoring.config.pipeline import load_config

    cfg = load_config(root / "config/pipeline.yaml")
    workspace = (root / cfg.platform.local.workspace_dir).resolve()
    return cfg.platform.local.metrics_url or f"sqlite:///{workspace / 'metrics.db'}"


def fill(params: dict) -> dict:
    """Bulk-load ``n`` records from ``start_ms`` over ``days`` (seeded) under the given CRNs."""
    from localcml.metrics.store import MetricsStore

    store = MetricsStore(metrics_url(Path(params["root"])))
    if store.db.dialect == "sqlite":  # loading speed only: the measured job uses its own connection
        store.db.execute(f"PRAGMA cache_size=-{SQLITE_LOAD_CACHE_KB}")
    spec = Spec(int(params["n"]), int(params["start_ms"]), float(params["days"]), int(params["seed"]))
    written = 0
    with measured() as m:
        for rows in store_rows(spec, params["deployment_crn"], params["build_crn"], params["model_crn"]):
            written += store.bulk_insert(rows)
    total = store.count(params["deployment_crn"])
    store.close()
    return {**m.to_dict(), "written": written, "stored": total}


def run_job(params: dict) -> dict:
    """Build the Context as the job does and run compute_accuracy; the peak is the whole job's."""
    from monitoring.workflows.accuracy import compute_accuracy

    with measured() as m:
        ctx = context(params["root"])
        outcome = compute_accuracy(ctx)
    live_crn = params["deployment_crn"]
    windows = ctx.store.windows(deployment_crn=live_crn)
    return {
        **m.to_dict(),
        "summary": outcome.summary,
        "windows_computed": outcome.fields.get("windows"),
        "aggregates_tracked": outcome.fields.get("aggregates_tracked"),
        "windows_stored": len(windows),
        "predictions_in_windows": sum(w.predictions for w in windows),
    }
