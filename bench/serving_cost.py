"""``python -m bench.serving_cost [--requests N]``: CPU per served request of each example model, one model call vs two.

Each example's first model is trained as ``bootstrap`` trains it (its own config, data and
trainer; the newest rows held out, where ``predict`` is checked against the most probable class),
saved and loaded as a replica loads it (one thread, validation included), then asked to predict
the held-out rows one request at a time: once on the two-call path (``predict`` and
``predict_proba``) and once on the path serving takes (one call when the artifact says so). CPU
is this process's (``time.process_time``), per request, the median of five passes.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from monitoring.config.data import SyntheticSource
from monitoring.config.pipeline import PipelineConfig, load_config
from monitoring.domain.data.requests import requests_of
from monitoring.domain.data.scenario import TelcoScenario
from monitoring.domain.data.sources import load_dataset
from monitoring.domain.data.sources.schema import conform
from monitoring.domain.training.artifacts import make_metadata, save_artifact
from monitoring.domain.training.estimators import THREADS
from monitoring.serving.predict import Predictor
from monitoring.workflows.retrain import split_by_time, train_candidate

REPO = Path(__file__).resolve().parents[1]
#: Every example model: the demo's default (telco, the built-in model) and examples/<name>/.
EXAMPLES = {
    "telco": REPO / "config" / "pipeline.yaml",
    "churn": REPO / "examples" / "churn" / "pipeline.yaml",
    "housing": REPO / "examples" / "housing" / "pipeline.yaml",
    "credit": REPO / "examples" / "credit" / "pipeline.yaml",
}
PASSES = 5


def training_frame(cfg: PipelineConfig) -> pd.DataFrame:
    """An example's initial training data (``data.training``), as ``retrain.initial_frame`` reads it."""
    source = cfg.data.training
    if isinstance(source, SyntheticSource):
        rng = np.random.default_rng([cfg.scenario.seed, 0, 0])
        frame = TelcoScenario.from_config(cfg).generate(source.rows or cfg.scenario.training_rows, rng, drift_level=0.0)
        return conform(frame, cfg.model, "data.training (synthetic)")
    return load_dataset(source, cfg.model, REPO, "data.training")


def train_example(name: str, artifacts_dir: Path) -> tuple[Path, pd.DataFrame]:
    """Train and save an example's first model.

    Returns:
        Its version directory and its held-out rows.
    """
    cfg = load_config(EXAMPLES[name])
    train, holdout = split_by_time(training_frame(cfg), cfg.retraining.holdout_fraction)
    candidate = train_candidate(cfg.model, train, holdout, cfg.scenario.seed, REPO)
    metadata = make_metadata(
        spec=cfg.model,
        trained_at_ms=0,
        n_train=len(train),
        holdout=candidate.holdout_metrics,
        reference={},
        trainer=candidate.fitted.trainer,
        predict_is_argmax=candidate.predict_is_argmax,
    )
    return Path(save_artifact(candidate.estimator, artifacts_dir, cfg.model.name, metadata)), holdout


def cpu_ms_per_request(predictor: Predictor, requests: list[dict]) -> float:
    """Median over ``PASSES`` of this process's CPU milliseconds per ``predict_one``."""
    passes = []
    for _ in range(PASSES):
        started = time.process_time()
        for request in requests:
            predictor.predict_one(request)
        passes.append((time.process_time() - started) * 1000 / len(requests))
    return statistics.median(passes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving_cost", description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="held-out rows per pass (default 200)")
    args = parser.parse_args(argv)
    threadpool_limits(THREADS)  # as a replica does
    print(f"{'model':8} {'trainer':32} {'one call':>8} {'two calls ms':>12} {'served ms':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in EXAMPLES:
            path, holdout = train_example(name, Path(tmp))
            predictor = Predictor.load(path)
            predictor.threads_limited = True
            requests = requests_of(holdout.iloc[: args.requests], predictor.spec)
            served = predictor.argmax
            predictor.argmax = False
            two = cpu_ms_per_request(predictor, requests)
            predictor.argmax = served
            now = cpu_ms_per_request(predictor, requests)
            trainer = predictor.artifact.metadata["trainer"]
            print(f"{name:8} {trainer:32} {str(served):>8} {two:12.2f} {now:9.2f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
