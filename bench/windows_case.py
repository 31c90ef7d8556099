"""Case (a): hourly window metrics from N parsed ``read_metrics`` records, ours vs the seed's way.

Both sides get the same parsed records (``read_metrics`` returns parsed JSON), loaded before the
clock starts; the peak is measured from there (the records themselves are reported apart).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bench.dataset import FEATURES, HOUR_MS, Spec, load_json, write_json
from bench.measure import measured, rss_mb
from bench.seed_way import seed
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.windows.bounds import BoundRequest
from monitoring.domain.windows.compute import compute_windows


def records_file(out_dir: Path, n: int, start_ms: int) -> Path:
    """The cached JSON dump of ``n`` records (written on first use)."""
    return write_json(Spec(n, start_ms), out_dir / f"records-{n}.json")


def digest(windows: pd.DataFrame) -> dict:
    """A few totals to check that both sides computed the same thing."""
    return {
        "windows": len(windows),
        "predictions": int(windows["predictions"].sum()),
        "labelled": int(windows["labelled"].sum()),
        "accuracy_sum": round(float(windows["accuracy"].fillna(0).sum()), 9),
        "f1_sum": round(float(windows["f1"].fillna(0).sum()), 9),
    }


def ours(records: list[dict], drift: bool = False) -> pd.DataFrame:
    """records_to_columns + compute_windows as compute_accuracy calls them for the shipped config: the
    task's metrics (ROC AUC and log-loss from the tracked probability) and the headline's bound
    (optionally with PSI/KS drift per feature)."""
    reference = None
    if drift:
        rng = np.random.default_rng(1)
        sample = rng.normal([0.0, 1.0, -0.5, 2.0], [1.0, 0.8, 1.2, 0.5], size=(4000, 4))
        reference = ReferenceStats.fit(pd.DataFrame(sample, columns=list(FEATURES)), FEATURES)
    columns = records_to_columns(records, FEATURES)
    results = compute_windows(columns, HOUR_MS, reference, bounds=[BoundRequest("accuracy")])
    return pd.DataFrame(
        {
            "start_ms": [r.start_ms for r in results],
            "predictions": [r.predictions for r in results],
            "labelled": [r.labelled for r in results],
            "accuracy": [r.accuracy for r in results],
            "f1": [r.f1 for r in results],
        }
    )


def run(params: dict) -> dict:
    """One side at one N: ``{"side": "ours"|"ours_drift"|"seed", "n", "start_ms", "out_dir"}``."""
    path = records_file(Path(params["out_dir"]), int(params["n"]), int(params["start_ms"]))
    records = load_json(path)
    input_mb = rss_mb()
    side = params["side"]
    with measured() as m:
        if side == "seed":
            windows = seed(records)
        else:
            windows = ours(records, drift=side == "ours_drift")
    return {**m.to_dict(), "records": len(records), "input_rss_mb": input_mb, "digest": digest(windows)}
