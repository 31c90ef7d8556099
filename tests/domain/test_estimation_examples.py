"""Estimation on every example model: fitted on its held-out rows at training time, close to the realized metric
on its first unseen rows (telco: the synthetic scenario under covariate shift)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from monitoring.config.pipeline import load_config
from monitoring.domain.data.scenario import TelcoScenario
from monitoring.domain.data.sources import load_dataset
from monitoring.domain.estimation.model import EstimationModel
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.training.predictions import predict_frame
from monitoring.domain.windows.compute import compute_windows
from monitoring.workflows.estimation import fit_estimation
from monitoring.workflows.retrain import split_by_time, train_candidate
from tests.domain.support import T0, prediction
from tests.domain.test_examples import replayed
from tests.project import REPO

DAY = 86_400_000


def _plain(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def records_of(frame: pd.DataFrame, spec, fitted) -> list[dict]:
    """What serving would have tracked for these rows: inputs, prediction, probability, and the label."""
    predicted = predict_frame(fitted.estimator, frame, spec, fitted.capabilities)
    positive = spec.classes.index(spec.positive_class) if len(spec.classes) == 2 else None
    out = []
    for i, (_, row) in enumerate(frame.iterrows()):
        features = {n: _plain(row[n]) for n in spec.feature_names}
        rec = prediction(
            f"e{i}", T0 + i, _plain(predicted.values[i]), label=_plain(row[spec.label.name]), features=features
        )
        if positive is not None:
            rec["metrics"]["probability"] = float(predicted.proba[i, positive])
        out.append(rec)
    return out


def telco():
    cfg = load_config(REPO / "config" / "pipeline.yaml")
    scenario = dataclasses.replace(TelcoScenario.from_config(cfg), drift_kind="covariate")
    rng = np.random.default_rng(24)
    return cfg, scenario.generate(4000, rng, drift_level=0.0), scenario.generate(2000, rng, drift_level=1.0)


def example(name: str, until: str | None = None):
    cfg = load_config(REPO / "examples" / name / "pipeline.yaml")
    frame = load_dataset(cfg.data.training, cfg.model, REPO, "data.training")
    _, plan = replayed(cfg)
    drift = cfg.data.replay.drift
    until = until or (drift.after.isoformat() if drift is not None and drift.after is not None else None)
    rows = plan.rows if until is None else plan.rows[plan.event_ms < int(pd.Timestamp(until).timestamp() * 1000)]
    return cfg, frame, rows.iloc[:2000]


CASES = {
    "telco": telco,
    "churn": lambda: example("churn"),
    "credit": lambda: example("credit", "2026-03-01"),
    "housing": lambda: example("housing"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_every_example_gets_an_estimate_close_to_its_realized_metric(name):
    cfg, frame, unseen = CASES[name]()
    spec = cfg.model
    train, holdout = split_by_time(frame, cfg.retraining.holdout_fraction)
    candidate = train_candidate(spec, train, holdout, 0, REPO)
    stored = fit_estimation(candidate.holdout_predictions, holdout, spec)
    assert stored is not None
    model = EstimationModel.from_dict(stored)
    columns = records_to_columns(records_of(unseen, spec, candidate.fitted), spec)
    (window,) = compute_windows(columns, 30 * DAY, estimation=model)
    metric = "accuracy" if spec.is_classifier else "mae"
    item = window.estimated[metric]
    assert item["rows"] == window.predictions == len(unseen)
    tolerance = 0.06 if spec.is_classifier else 0.2 * item["realized"]
    assert abs(item["error"]) < tolerance, (name, item)
