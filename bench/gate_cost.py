"""``python -m bench.gate_cost [--rows 10000] [--resamples 1000]``: what the statistical gate costs.

Times ``bootstrap_gate`` (``monitoring/domain/training/gate.py``) on seeded held-out rows, per
metric: the vectorised means (accuracy, MAE, RMSE) and a metric scored per resample (F1). CPU is
this process's (``time.process_time``), the median of three runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from monitoring.config.model_spec import ModelConfig
from monitoring.domain.training.gate import bootstrap_gate
from monitoring.domain.training.predictions import Predictions

FEATURES = [{"name": "x", "kind": "numeric"}]
CLASSIFIER = ModelConfig(name="bench", features=FEATURES, label={"name": "y", "classes": ["No", "Yes"]})
REGRESSOR = ModelConfig(name="bench", task="regression", features=FEATURES, label={"name": "y"})


def _cases(rows: int, rng: np.random.Generator):
    y = rng.choice(np.array(["No", "Yes"], dtype=object), rows)
    flip = {"No": "Yes", "Yes": "No"}
    champion = np.array([v if rng.random() < 0.8 else flip[v] for v in y], dtype=object)
    challenger = np.array([v if rng.random() < 0.82 else flip[v] for v in y], dtype=object)
    target = rng.normal(100, 20, rows)
    for metric in ("accuracy", "f1"):
        yield metric, CLASSIFIER, y, Predictions(champion), Predictions(challenger)
    for metric in ("mae", "rmse"):
        yield (
            metric,
            REGRESSOR,
            target,
            Predictions(target + rng.normal(0, 10, rows)),
            Predictions(target + rng.normal(0, 9, rows)),
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args(argv)
    print(f"{'metric':<9} {'rows':>6} {'resamples':>9} {'cpu s':>7}  verdict")
    for metric, spec, y, champion, challenger in _cases(args.rows, np.random.default_rng(0)):
        times, verdict = [], None
        for _ in range(3):
            start = time.process_time()
            verdict = bootstrap_gate(
                metric,
                y,
                champion,
                challenger,
                spec,
                confidence=0.95,
                resamples=args.resamples,
                rng=np.random.default_rng(1),
            )
            times.append(time.process_time() - start)
        low, high = verdict.interval
        print(
            f"{metric:<9} {args.rows:>6} {args.resamples:>9} {statistics.median(times):>7.3f}  "
            f"{'better' if verdict.better else 'not better'} ({low:.4g} to {high:.4g})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
