"""``python -m bench.lifecycle_cost [--seed 7] [--repeat 3] [--rows 20000]``: what MLflow adds to a retrain.

Times, in one process, a retrain's own fit (a scikit-learn pipeline on ``rows`` synthetic rows) and
what issue 23 adds to it: ``log_training`` (a run with params, metrics, tags, the model with its
signature and input example) and ``register`` (a new version with an alias), against a real MLflow
store: ``MLFLOW_TRACKING_URI`` if set (the local workspace's server: ``eval "$(cml-monitor local env)"``),
else a fresh SQLite store in a temporary directory. The first repeat includes MLflow's import and
the store's creation; the median of the others is the steady cost. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lifecycle_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    import warnings

    warnings.simplefilter("ignore")
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import RandomForestClassifier

    start = time.perf_counter()
    import mlflow

    from monitoring.lifecycle.experiment_run import log_training, register

    import_s = time.perf_counter() - start
    given = bool(os.environ.get("MLFLOW_TRACKING_URI"))
    store = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(tempfile.mkdtemp()) / 'mlflow.db'}"
    mlflow.set_tracking_uri(store)
    rng = np.random.default_rng(args.seed)
    frame = pd.DataFrame(rng.normal(size=(args.rows, 8)), columns=[f"f{i}" for i in range(8)])
    target = (frame.f0 + rng.normal(0, 0.5, args.rows) > 0).astype(int)
    rows = []
    for index in range(args.repeat):
        t0 = time.perf_counter()
        model = RandomForestClassifier(n_estimators=50, random_state=args.seed).fit(frame, target)
        t1 = time.perf_counter()
        record = log_training(
            "bench-model",
            "retrain",
            model,
            frame.head(5),
            params={"rows": args.rows, "strategy": "window"},
            metrics={"challenger_accuracy": 0.9, "champion_accuracy": 0.85},
            decision_id=f"d-{index}",
            job_run_id=None,
            config_digest="bench",
        )
        t2 = time.perf_counter()
        register(record, "bench-model", alias="challenger")
        t3 = time.perf_counter()
        rows.append({"fit_s": t1 - t0, "log_s": t2 - t1, "register_s": t3 - t2})
    steady = rows[1:] or rows
    summary = {
        "store": "MLFLOW_TRACKING_URI" if given else "sqlite (temporary)",
        "seed": args.seed,
        "rows": args.rows,
        "mlflow_import_s": round(import_s, 2),
        "first": {k: round(v, 3) for k, v in rows[0].items()},
        "steady_median": {k: round(statistics.median(r[k] for r in steady), 3) for k in rows[0]},
    }
    summary["steady_extra_fraction_of_fit"] = round(
        (summary["steady_median"]["log_s"] + summary["steady_median"]["register_s"])
        / summary["steady_median"]["fit_s"],
        2,
    )
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
