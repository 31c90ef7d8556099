"""``python -m bench.detection_delay [--seed 24] [--rows 600] [--delay 6] [--stable 300]``: hours to the first warning.

Seeded hourly windows of a binary classifier (two numeric signals, a third one, a categorical
region of 8 values; the model's score ranks as the true concept does but is overconfident), its
calibration, slice counts and joint-drift sample fitted on 6,000 held-out reference rows. Each
scenario is stable for 24 windows, then drifts, for 48 more:

- ``covariate``: the inputs crowd the decision boundary (the model gets worse, the concept holds);
- ``concept``: P(label | inputs) changes (30% of the labels follow a flipped concept), the inputs do not;
- ``slice``: one region's labels disagree with the model 30% more often, the others hold;
- ``joint``: two signals correlated at 0.8 become correlated at -0.8 (each one's distribution holds).

Per method, the first warning: ``estimated`` (CBPE accuracy below the reference estimate less
0.05, at the window's end), ``labels`` (the realized accuracy's Wilson upper bound below the same
limit, as the ``wilson`` policy, once the window's labels land, ``--delay`` hours later), ``slices`` (the policy's defaults: Benjamini-Hochberg at 0.01, tolerance 0.02,
with the labels), ``joint`` (the domain classifier's AUROC lower bound above 0.6, at the window's
end), ``psi`` (any feature's PSI above 0.25). Hours from the drift's start (the end of the first
drifted window counts 1); then false warnings per 100 windows of a ``--stable`` window stable run.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

HOUR = 3_600_000
T0 = 1_795_428_000_000
FEATURES = ("x1", "x2", "x3")
REGIONS = np.array([f"r{i}" for i in range(8)], dtype=object)
START, DRIFTED = 24, 48
SCENARIOS = ("covariate", "concept", "slice", "joint")


def rows(rng, n, kind: str | None):
    """Inputs, the model's score and the labels of ``n`` rows, drifted as ``kind`` says (None: stable)."""
    spread, centre = (0.45, (-0.2, 0.1)) if kind == "covariate" else (1.0, (0.0, 0.0))
    corr = -0.8 if kind == "joint" else 0.8
    x1 = rng.normal(centre[0], spread, n)
    x2 = corr * x1 + np.sqrt(1 - corr * corr) * rng.normal(0, spread, n) + centre[1]
    x3 = rng.normal(0, 1, n)
    region = REGIONS[rng.integers(0, REGIONS.size, n)]
    z = 3.0 * x1 - 2.0 * x2 + 1.0 * x3 + 0.3
    truth = np.where((kind == "concept") & (rng.random(n) < 0.3), -z, z)
    y = (rng.random(n) < 1 / (1 + np.exp(-truth))).astype(float)
    if kind == "slice":
        flip = (region == "r3") & (rng.random(n) < 0.3)
        y[flip] = 1 - y[flip]
    score = 1 / (1 + np.exp(-2.0 * z))
    return np.column_stack([x1, x2, x3]), region, score, y


def columns_of(x, region, score, y, hour: int):
    from monitoring.domain.records.columns import Columns

    n = score.size
    return Columns(
        uuid=np.array([f"u{hour}-{i}" for i in range(n)], dtype=object),
        start_ms=T0 + hour * HOUR + np.sort(np.random.default_rng(hour).integers(0, HOUR, n)),
        deployment_crn=np.full(n, "crn:bench", dtype=object),
        prediction=(score >= 0.5).astype(float),
        label=y,
        features=x,
        feature_names=FEATURES,
        categories={"region": region},
        classes=(0, 1),
        positive=1,
        proba=score,
    )


def references(rng):
    import pandas as pd

    from monitoring.config.slices import SliceBy
    from monitoring.domain.estimation.model import fit_classifier
    from monitoring.domain.metrics.drift import ReferenceStats
    from monitoring.domain.multivariate.classifier import JointReference
    from monitoring.domain.slices.model import Slicing, stats_of_rows

    x, region, score, y = rows(rng, 6000, None)
    numeric = {name: x[:, j] for j, name in enumerate(FEATURES)}
    frame = pd.DataFrame(numeric).assign(region=region)
    drift = ReferenceStats.fit(frame, [*FEATURES, "region"], kinds={"region": "categorical"})
    estimation = fit_classifier(np.column_stack([1 - score, score]), y.astype(int), 1)
    cuts = (SliceBy(feature="region"),)
    pred = (score >= 0.5).astype(np.intp)
    slicing = Slicing(
        cuts, 50, stats_of_rows(cuts, numeric, {"region": region}, y_pred=pred, y_true=y.astype(np.intp), positive=1)
    )
    joint = JointReference.fit(numeric, {"region": region}, 1)
    return drift, estimation, slicing, joint


def warnings_of(w, limit: float) -> set[str]:
    from monitoring.config.pipeline import SlicesPolicy
    from monitoring.domain.decisions.thresholds import slice_findings
    from monitoring.domain.slices.stats import wilson

    out = set()
    if w.estimated.get("accuracy", {}).get("value", 1.0) < limit:
        out.add("estimated")
    if w.accuracy is not None and wilson(round(w.accuracy * w.labelled), w.labelled)[1] < limit:
        out.add("labels")  # as the wilson policy: even the upper bound is below the limit
    if any(f.flagged for f in slice_findings(w, SlicesPolicy(kind="slices"))):
        out.add("slices")
    if (w.joint_drift or {}).get("low", 0.0) > 0.6:
        out.add("joint")
    if any((s.get("psi") or 0) > 0.25 for s in w.drift.values()):
        out.add("psi")
    return out


#: Methods that need the window's labels (they warn ``--delay`` hours after the window's end).
NEEDS_LABELS = {"labels", "slices"}
METHODS = ("estimated", "labels", "slices", "joint", "psi")


def run(rng, refs, kind: str | None, windows: int, n: int):
    from monitoring.domain.windows.compute import compute_windows

    drift, estimation, slicing, joint = refs
    out = []
    for hour in range(windows):
        drifted = kind if kind is not None and hour >= START else None
        cols = columns_of(*rows(rng, n, drifted), hour)
        (w,) = compute_windows(cols, HOUR, drift, estimation=estimation, slicing=slicing, joint=joint, seed=hour)
        out.append(w)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.detection_delay", description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=24)
    parser.add_argument("--rows", type=int, default=600)
    parser.add_argument("--delay", type=int, default=6, help="hours from a window's end to its labels")
    parser.add_argument("--stable", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    refs = references(rng)
    base = run(rng, refs, None, 6, args.rows)
    limit = float(np.mean([w.estimated["accuracy"]["value"] for w in base])) - 0.05
    delays: dict[str, dict[str, int | None]] = {}
    for kind in SCENARIOS:
        windows = run(rng, refs, kind, START + DRIFTED, args.rows)
        delays[kind] = {}
        for method in METHODS:
            first = next((i for i, w in enumerate(windows) if i >= START and method in warnings_of(w, limit)), None)
            lag = args.delay if method in NEEDS_LABELS else 0
            delays[kind][method] = None if first is None else first - START + 1 + lag
    stable = run(rng, refs, None, args.stable, args.rows)
    false = {m: round(100 * sum(m in warnings_of(w, limit) for w in stable) / len(stable), 2) for m in METHODS}
    print(
        json.dumps(
            {
                "seed": args.seed,
                "rows_per_window": args.rows,
                "label_delay_h": args.delay,
                "limit_accuracy": round(limit, 4),
                "hours_to_first_warning": delays,
                "false_warnings_per_100_stable_windows": false,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
