"""The statistical gate: a challenger better only by noise is rejected, a truly better one accepted (seeded)."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.core.errors import DataError
from monitoring.domain.training.challenge import judge
from monitoring.domain.training.gate import bootstrap_gate
from monitoring.domain.training.predictions import Predictions
from tests.domain import mixed

BINARY = mixed.spec()
REGRESSION = mixed.spec("regression")


def _classes(y: np.ndarray, right: np.ndarray) -> Predictions:
    return Predictions(np.where(right, y, np.where(y == "Yes", "No", "Yes")).astype(object))


def _gate(metric, y, champion, challenger, spec, seed=0, confidence=0.95):
    rng = np.random.default_rng(seed)
    return bootstrap_gate(metric, y, champion, challenger, spec, confidence=confidence, resamples=1000, rng=rng)


def test_a_challenger_better_only_by_noise_is_rejected_where_the_margin_gate_lets_it_through():
    """Both right on 80% of 400 rows by chance; the challenger happens to get 2 points more."""
    rng = np.random.default_rng(7)
    y = rng.choice(np.array(["No", "Yes"], dtype=object), 400)
    champion_right = np.zeros(400, bool)
    champion_right[rng.choice(400, 320, replace=False)] = True
    challenger_right = np.zeros(400, bool)
    challenger_right[rng.choice(400, 328, replace=False)] = True
    champion, challenger = _classes(y, champion_right), _classes(y, challenger_right)
    assert judge("accuracy", 0.80, 0.82, 0.01).better  # the old gate: a point estimate beats the margin
    verdict = _gate("accuracy", y, champion, challenger, BINARY)
    assert not verdict.better
    assert verdict.gain == pytest.approx(0.02) and verdict.interval[0] < 0 < verdict.interval[1]
    assert "not better beyond noise" in verdict.reason and "95% interval" in verdict.reason


def test_a_truly_better_challenger_is_accepted_with_its_interval():
    rng = np.random.default_rng(11)
    y = rng.normal(100, 20, 500)
    champion = Predictions(y + rng.normal(0, 10, 500))
    challenger = Predictions(y + rng.normal(0, 6, 500))
    verdict = _gate("mae", y, champion, challenger, REGRESSION)
    assert verdict.better and verdict.champion > verdict.challenger
    low, high = verdict.interval
    assert 0 < low < verdict.gain < high and verdict.confidence == 0.95
    assert "better by" in verdict.reason


def test_a_regressor_better_by_one_percent_of_noise_is_rejected():
    rng = np.random.default_rng(3)
    y = rng.normal(100, 20, 300)
    noise = rng.normal(0, 10, 300)
    champion = Predictions(y + noise)
    challenger = Predictions(y + noise * 0.99 + rng.normal(0, 3, 300))
    assert judge("mae", np.abs(noise).mean(), np.abs(noise).mean() * 0.98, 0.01).better
    assert not _gate("rmse", y, champion, challenger, REGRESSION).better


def test_the_gate_is_seeded_and_judges_any_metric():
    rng = np.random.default_rng(5)
    y = rng.choice(np.array(["No", "Yes"], dtype=object), 300)
    champion = _classes(y, rng.random(300) < 0.6)
    challenger = _classes(y, rng.random(300) < 0.9)
    first = _gate("f1", y, champion, challenger, BINARY, seed=1)
    assert first == _gate("f1", y, champion, challenger, BINARY, seed=1)
    assert first.better and first.interval[0] > 0.1


def test_predictions_of_other_rows_are_refused():
    y = np.zeros(10)
    with pytest.raises(DataError, match="same rows"):
        _gate("mae", y, Predictions(np.zeros(10)), Predictions(np.zeros(9)), REGRESSION)
