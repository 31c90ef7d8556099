"""Retraining data strategies: the rows each selects, the recency weights, and their way into any trainer."""

from __future__ import annotations

import sys
import textwrap
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from monitoring.config.retraining import StrategyConfig
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.training.estimators import fit
from monitoring.domain.training.predictions import predict_frame
from monitoring.domain.training.strategies import recency_weights, select_rows
from tests.domain import mixed

REGRESSION = mixed.spec("regression")
HOUR = 3_600_000
NOW = 100 * HOUR


def labelled(n: int, seed: int = 1, shift: float = 0.0) -> pd.DataFrame:
    """``n`` regression rows one minute apart ending at NOW, the target shifted by ``shift``."""
    frame = mixed.frame(n, np.random.default_rng(seed), REGRESSION)
    frame["target"] += shift
    frame["start_ms"] = NOW - (n - np.arange(n)) * 60_000
    return frame


def test_sliding_trains_on_the_older_lookback_rows_and_holds_out_the_newest():
    rows = labelled(100)
    picked = select_rows(StrategyConfig(kind="sliding"), rows, 30, now_ms=NOW)
    assert len(picked.train) == 70 and len(picked.holdout) == 30 and picked.weights is None
    assert picked.train["start_ms"].max() < picked.holdout["start_ms"].min()
    pd.testing.assert_frame_equal(picked.holdout, rows.iloc[70:].reset_index(drop=True))


def test_expanding_puts_the_initial_training_data_first_and_holds_out_the_same_newest_rows():
    history, initial = labelled(300), labelled(50, seed=2).drop(columns="start_ms")
    picked = select_rows(StrategyConfig(kind="expanding"), history, 30, initial=initial, now_ms=NOW)
    assert len(picked.train) == 50 + 270 and picked.weights is None
    pd.testing.assert_frame_equal(picked.holdout, history.iloc[270:].reset_index(drop=True))
    everything, weights = picked.everything()
    assert len(everything) == 350 and weights is None
    assert picked.describe(refitted=True) == {
        "strategy": "expanding",
        "fitted_rows": 350,
        "held_out_rows": 30,
        "held_out_included": True,
        "weighted": False,
    }


def test_recency_weights_halve_every_half_life_and_untimed_rows_count_as_the_oldest():
    times = np.array([np.nan, NOW - 2 * HOUR, NOW - HOUR, NOW], dtype=np.float64)
    weights = recency_weights(times, HOUR, NOW)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[3] / weights[2] == pytest.approx(2.0) and weights[2] / weights[1] == pytest.approx(2.0)
    assert weights[0] == pytest.approx(weights[1])
    with pytest.raises(DataError, match="half_life"):
        recency_weights(times, 0, NOW)


def test_recency_weighted_selects_the_expanding_rows_with_one_weight_each():
    history, initial = labelled(120), labelled(40, seed=2)
    strategy = StrategyConfig(kind="recency_weighted", half_life=timedelta(minutes=30))
    picked = select_rows(strategy, history, 20, initial=initial, now_ms=NOW, times=history["start_ms"].to_numpy())
    assert len(picked.weights) == 160 and len(picked.train_weights) == 140
    # initial rows have data-set times, not traffic times: they weigh as the oldest labelled row
    np.testing.assert_allclose(picked.weights[:40], picked.weights[40])
    assert picked.weights[-1] > picked.weights[40] * 2 ** (119 / 30 - 0.01)


def test_a_split_without_held_out_rows_or_training_rows_is_refused():
    with pytest.raises(DataError, match="cannot be split"):
        select_rows(StrategyConfig(), labelled(10), 0, now_ms=NOW)
    with pytest.raises(DataError, match="cannot be split"):
        select_rows(StrategyConfig(), labelled(10), 10, now_ms=NOW)


def test_the_builtin_model_follows_its_sample_weights():
    """Old rows (target +500) and recent rows: weights on the recent ones make the model predict them."""
    old, recent = labelled(600, seed=1, shift=500.0), labelled(600, seed=2)
    frame = pd.concat([old, recent], ignore_index=True)
    probe = labelled(200, seed=3)
    plain = fit(frame, REGRESSION, seed=0)
    weights = np.r_[np.full(600, 1e-3), np.ones(600)]
    weighted = fit(frame, REGRESSION, seed=0, sample_weight=weights)
    err = {
        name: np.abs(predict_frame(f.estimator, probe, REGRESSION, f.capabilities).values - probe["target"]).mean()
        for name, f in (("plain", plain), ("weighted", weighted))
    }
    assert err["weighted"] < 30 < err["plain"]


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    (tmp_path / "weighted").mkdir()
    (tmp_path / "weighted" / "__init__.py").write_text("")
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("weighted"):
            del sys.modules[name]


TRAINERS = """
from sklearn.linear_model import LinearRegression
SEEN = []

def with_weights(frame, spec, sample_weight=None):
    SEEN.append(sample_weight)
    return LinearRegression().fit(frame[spec.numeric_features], frame[spec.label.name], sample_weight)

def without_weights(frame, spec):
    return LinearRegression().fit(frame[spec.numeric_features], frame[spec.label.name])
"""


def test_a_trainer_receives_sample_weight_and_one_without_the_argument_is_refused(project):
    (project / "weighted" / "trainers.py").write_text(textwrap.dedent(TRAINERS))
    numeric_only = REGRESSION.model_copy(update={"features": [f for f in REGRESSION.features if f.name == "tenure"]})
    frame = labelled(200)
    weights = np.linspace(0.1, 2, 200)
    fit(frame, numeric_only.model_copy(update={"trainer": "weighted.trainers:with_weights"}), 0, project, weights)
    seen = sys.modules["weighted.trainers"].SEEN
    assert len(seen) == 1 and np.array_equal(seen[0], weights)
    fit(frame, numeric_only.model_copy(update={"trainer": "weighted.trainers:with_weights"}), 0, project)
    assert seen[1] is None  # unweighted strategies call it as before
    refusing = numeric_only.model_copy(update={"trainer": "weighted.trainers:without_weights"})
    with pytest.raises(ConfigError, match="sample_weight"):
        fit(frame, refusing, 0, project, weights)
    fit(frame, refusing, 0, project)  # and is called as before without weights
