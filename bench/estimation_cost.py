"""``python -m bench.estimation_cost [--seed 24] [--rows 1000000] [--repeat 3]``: what issue 24 adds to the windows.

Times ``compute_windows`` on ``rows`` seeded records (10 days of hourly windows, 4 numeric features
and one categorical, a binary classifier's prediction, probability and label on 90% of them), as
today (metrics and drift against a training reference) and with what issue 24 adds: performance
estimated per window (CBPE), slices (the categorical feature's 12 values, 3 bins of a numeric
one), joint drift (the domain classifier) and data quality, each alone and all together. The columns are built in memory (decoding records costs the same either way and is left
out). The median of the repeats. Prints one JSON object: seconds per step and the ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np

HOUR = 3_600_000
T0 = 1_795_428_000_000
FEATURES = ("iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4")
REGIONS = np.array([f"region-{i:02d}" for i in range(12)], dtype=object)


def columns_of(rng: np.random.Generator, n: int):
    from monitoring.domain.records.columns import Columns

    x = rng.normal(size=(n, 4))
    score = 1 / (1 + np.exp(-(1.5 * x[:, 0] - x[:, 1])))
    y = (rng.random(n) < score).astype(float)
    y[rng.random(n) < 0.1] = np.nan
    return Columns(
        uuid=np.array([f"u{i}" for i in range(n)], dtype=object),
        start_ms=T0 + np.sort(rng.integers(0, 240 * HOUR, n)),
        deployment_crn=np.full(n, "crn:bench", dtype=object),
        prediction=(score >= 0.5).astype(float),
        label=y,
        features=x,
        feature_names=FEATURES,
        latency_ms=rng.uniform(5, 50, n),
        categories={"region": REGIONS[rng.integers(0, 12, n)]},
        classes=(0, 1),
        positive=1,
        proba=score,
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.estimation_cost", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import pandas as pd

    from monitoring.config.slices import SliceBy
    from monitoring.domain.estimation.model import fit_classifier
    from monitoring.domain.metrics.drift import ReferenceStats
    from monitoring.domain.multivariate.classifier import JointReference
    from monitoring.domain.slices.model import Slicing, stats_of_rows
    from monitoring.domain.windows.compute import compute_windows

    rng = np.random.default_rng(args.seed)
    columns = columns_of(rng, args.rows)
    ref = columns_of(rng, 20_000)
    frame = pd.DataFrame(ref.features, columns=list(FEATURES)).assign(region=ref.categories["region"])
    reference = ReferenceStats.fit(frame, [*FEATURES, "region"], kinds={"region": "categorical"})
    scored = np.isfinite(ref.label)
    estimation = fit_classifier(np.column_stack([1 - ref.proba, ref.proba])[scored], ref.label[scored].astype(int), 1)
    cuts = (SliceBy(feature="region"), SliceBy(feature="iot_signal_1", bins=[-1, 1]))
    y_true = np.where(scored, ref.label, -1).astype(np.intp)
    numeric = {name: ref.features[:, j] for j, name in enumerate(FEATURES)}
    slicing = Slicing(
        cuts,
        50,
        stats_of_rows(cuts, numeric, ref.categories, y_pred=ref.prediction.astype(np.intp), y_true=y_true, positive=1),
    )
    joint = JointReference.fit(numeric, ref.categories, args.seed)
    steps = {
        "today": dict(),
        "estimation": dict(estimation=estimation),
        "slices": dict(slicing=slicing),
        "joint_drift": dict(joint=joint),
        "quality": dict(quality=True),
        "all": dict(estimation=estimation, slicing=slicing, joint=joint, quality=True),
    }
    out = {"rows": args.rows, "windows": None, "seconds": {}}
    for name, extra in steps.items():
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            results = compute_windows(columns, HOUR, reference, **extra)
            times.append(time.perf_counter() - t0)
        out["windows"] = len(results)
        out["seconds"][name] = round(statistics.median(times), 3)
    base = out["seconds"]["today"]
    out["ratio"] = {k: round(v / base, 2) for k, v in out["seconds"].items()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
