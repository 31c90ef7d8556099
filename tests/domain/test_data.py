"""The synthetic telco scenario: deterministic, learnable, and drifting the way it is told to."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitoring.config.pipeline import load_config
from monitoring.core.errors import ConfigError
from monitoring.domain.data.scenario import TelcoScenario, drift_level_at
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.training.estimators import fit
from monitoring.domain.training.predictions import score
from tests.domain.support import FEATURES

LABEL = "cell_tower_failure"
REPO = Path(__file__).resolve().parents[2]
SPEC = load_config(REPO / "config" / "pipeline.yaml").model


def train_model(frame: pd.DataFrame, seed: int):
    return fit(frame, SPEC, seed).estimator


def accuracy(model, frame: pd.DataFrame) -> float:
    return score(model, frame, SPEC)["accuracy"]


@pytest.fixture(scope="module")
def concept() -> TelcoScenario:
    return TelcoScenario(drift_kind="concept", drift_strength=1.0, label_noise=0.03)


@pytest.fixture(scope="module")
def trained(concept):
    rng = np.random.default_rng(42)
    train = concept.generate(4000, rng)
    return train_model(train, seed=42), train


def test_same_generator_state_gives_identical_rows(concept):
    a = concept.generate(500, np.random.default_rng(7))
    b = concept.generate(500, np.random.default_rng(7))
    c = concept.generate(500, np.random.default_rng(8))
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)
    assert list(a.columns) == [*FEATURES, LABEL]
    assert a[LABEL].dtype == np.int64 and set(a[LABEL].unique()) == {0, 1}


def test_signals_have_lab_like_ranges_and_correlation(concept):
    frame = concept.generate(20_000, np.random.default_rng(1))
    lows, highs = frame[FEATURES].min(), frame[FEATURES].max()
    for name, lo, hi in zip(FEATURES, (1, 50, 100, 0), (12, 55, 107, 100)):
        assert lo <= lows[name] and highs[name] <= hi, name
    assert np.corrcoef(frame["iot_signal_1"], frame["iot_signal_2"])[0, 1] > 0.8
    assert 0.25 < frame[LABEL].mean() < 0.45


def test_concept_drift_keeps_features_and_changes_only_labels(concept):
    before = concept.generate(1000, np.random.default_rng(3), drift_level=0.0)
    after = concept.generate(1000, np.random.default_rng(3), drift_level=1.0)
    pd.testing.assert_frame_equal(before[FEATURES], after[FEATURES])
    assert (before[LABEL] != after[LABEL]).mean() > 0.3


def test_label_depends_on_features(trained, concept):
    model, train = trained
    holdout = concept.generate(3000, np.random.default_rng(43))
    majority = max(holdout[LABEL].mean(), 1 - holdout[LABEL].mean())
    acc = accuracy(model, holdout)
    assert 0.88 <= acc <= 0.95
    assert acc >= majority + 0.2


def test_concept_drift_hurts_the_old_model_and_retraining_recovers(trained, concept):
    model, _ = trained
    rng = np.random.default_rng(44)
    drifted = concept.generate(3000, rng, drift_level=1.0)
    assert 0.55 <= accuracy(model, drifted) <= 0.70
    fresh = concept.generate(300, rng, drift_level=1.0)
    retrained = train_model(fresh, seed=1)
    assert accuracy(retrained, drifted) > 0.85


def test_partial_drift_lies_between(trained, concept):
    model, _ = trained
    half = accuracy(model, concept.generate(3000, np.random.default_rng(45), drift_level=0.5))
    full = accuracy(model, concept.generate(3000, np.random.default_rng(45), drift_level=1.0))
    none = accuracy(model, concept.generate(3000, np.random.default_rng(45), drift_level=0.0))
    assert full < half < none


def test_covariate_drift_moves_features_with_modest_accuracy_effect(trained):
    model, train = trained
    covariate = TelcoScenario(drift_kind="covariate")
    before = covariate.generate(3000, np.random.default_rng(46), drift_level=0.0)
    after = covariate.generate(3000, np.random.default_rng(46), drift_level=1.0)
    reference = ReferenceStats.fit(train, FEATURES)
    assert all(reference.psi(f, after[f].to_numpy()) > 0.2 for f in FEATURES)
    assert all(reference.psi(f, before[f].to_numpy()) < 0.02 for f in FEATURES)
    assert abs(accuracy(model, after) - accuracy(model, before)) < 0.05


def test_both_drifts_shift_features_and_labels(trained):
    model, train = trained
    both = TelcoScenario(drift_kind="both").generate(3000, np.random.default_rng(47), drift_level=1.0)
    reference = ReferenceStats.fit(train, FEATURES)
    assert reference.psi("iot_signal_4", both["iot_signal_4"].to_numpy()) > 0.2
    assert accuracy(model, both) < 0.75


def test_no_drift_kind_ignores_the_level(concept):
    none = TelcoScenario(drift_kind="none")
    pd.testing.assert_frame_equal(
        none.generate(200, np.random.default_rng(5), 1.0), none.generate(200, np.random.default_rng(5), 0.0)
    )


def test_arguments_are_checked(concept):
    with pytest.raises(ValueError, match="drift_level must be between 0 and 1, got 1.5"):
        concept.generate(10, np.random.default_rng(0), drift_level=1.5)
    with pytest.raises(ValueError, match="n must not be negative"):
        concept.generate(-1, np.random.default_rng(0))
    empty = concept.generate(0, np.random.default_rng(0))
    assert list(empty.columns) == [*FEATURES, LABEL] and len(empty) == 0


def test_from_config_reads_model_and_scenario():
    cfg = load_config(REPO / "config" / "pipeline.yaml")
    scenario = TelcoScenario.from_config(cfg)
    assert scenario.features == tuple(cfg.model.feature_names)
    assert scenario.label == cfg.model.label.name
    assert scenario.label_noise == cfg.scenario.label_noise
    assert (scenario.drift_kind, scenario.drift_strength) == (cfg.scenario.drift.kind, cfg.scenario.drift.strength)


def test_wrong_feature_count_is_a_config_error():
    with pytest.raises(ConfigError, match=r"model.features: the telco scenario needs exactly 4 features, got 3"):
        TelcoScenario(features=("a", "b", "c"))


def test_drift_level_is_a_step_at_start_after():
    epoch, after = 1_000_000, 4 * 3_600_000
    assert drift_level_at(epoch, epoch, after) == 0.0
    assert drift_level_at(epoch + after - 1, epoch, after) == 0.0
    assert drift_level_at(epoch + after, epoch, after) == 1.0
    assert drift_level_at(epoch + 10 * after, epoch, after) == 1.0
