"""Metric bounds: exact forms (Wilson, t), coverage of the truth in seeded simulations, breach sides, errors."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy import stats

from monitoring.core.errors import DataError
from monitoring.domain.metrics.bounds import (
    BOOTSTRAP_MAX_ROWS,
    breach_bound,
    classification_bounds,
    regression_bounds,
    wilson_bounds,
)
from monitoring.domain.windows.bounds import wilson_interval

REPS = 2000
#: Bootstrap repetitions cost ``resamples`` times more; 400 still puts 90% coverage 4 sigma below 95%.
BOOT_REPS = 400
MIN_COVERAGE = 0.90


def coverage(bounds, truth: float) -> float:
    return float(np.mean((bounds.low <= truth) & (truth <= bounds.high)))


def binary_sample(reps: int, n: int, seed: int):
    """``reps`` windows of ``n`` rows: P(y=1) = 0.3, predictions right 80% of the time."""
    rng = np.random.default_rng(seed)
    y = (rng.random(reps * n) < 0.3).astype(int)
    pred = np.where(rng.random(reps * n) < 0.8, y, 1 - y)
    return y, pred, np.repeat(np.arange(reps), n)


PRECISION = 0.3 * 0.8 / (0.3 * 0.8 + 0.7 * 0.2)
RECALL = 0.8
F1 = 2 * PRECISION * RECALL / (PRECISION + RECALL)


@pytest.mark.parametrize(("metric", "truth"), [("accuracy", 0.8), ("precision", PRECISION), ("recall", RECALL)])
def test_wilson_bounds_cover_the_truth(metric, truth):
    y, pred, group = binary_sample(REPS, 60, seed=1)
    bounds = classification_bounds(metric, y, pred, 2, group=group, n_groups=REPS)
    assert bounds.method == "wilson"
    assert coverage(bounds, truth) >= MIN_COVERAGE


def test_f1_bootstrap_covers_the_truth():
    y, pred, group = binary_sample(BOOT_REPS, 80, seed=2)
    bounds = classification_bounds(
        "f1", y, pred, 2, group=group, n_groups=BOOT_REPS, rng=np.random.default_rng(3), resamples=300
    )
    assert bounds.method == "bootstrap"
    assert coverage(bounds, F1) >= MIN_COVERAGE


def test_auc_bootstrap_covers_the_truth():
    rng = np.random.default_rng(4)
    n = 80
    y = (rng.random(BOOT_REPS * n) < 0.4).astype(int)
    score = 1 / (1 + np.exp(-(y + rng.normal(0, 1, y.size))))  # AUC = P(N(1, 2) > 0) = Phi(1 / sqrt 2)
    group = np.repeat(np.arange(BOOT_REPS), n)
    bounds = classification_bounds(
        "roc_auc",
        y,
        (score > 0.5).astype(int),
        2,
        proba=score,
        group=group,
        n_groups=BOOT_REPS,
        rng=np.random.default_rng(5),
        resamples=300,
    )
    assert coverage(bounds, NormalDist().cdf(1 / math.sqrt(2))) >= MIN_COVERAGE


def test_log_loss_t_bound_covers_the_truth():
    rng = np.random.default_rng(6)
    n = 100
    p = rng.uniform(0.2, 0.8, REPS * n)
    y = (rng.random(p.size) < p).astype(int)  # calibrated: expected loss is the mean binary entropy
    truth = float(np.mean(-(p * np.log(p) + (1 - p) * np.log(1 - p))))
    group = np.repeat(np.arange(REPS), n)
    bounds = classification_bounds("log_loss", y, (p > 0.5).astype(int), 2, proba=p, group=group, n_groups=REPS)
    assert bounds.method == "t" and coverage(bounds, truth) >= MIN_COVERAGE


def regression_sample(reps: int, n: int, seed: int):
    """Targets N(10, 2), errors N(0.5, 1)."""
    rng = np.random.default_rng(seed)
    y = rng.normal(10, 2, reps * n)
    return y, y + rng.normal(0.5, 1, y.size), np.repeat(np.arange(reps), n)


@pytest.mark.parametrize(
    ("metric", "truth"),
    [
        ("mae", math.sqrt(2 / math.pi) * math.exp(-0.125) + 0.5 * (1 - 2 * NormalDist().cdf(-0.5))),
        ("rmse", math.sqrt(1.25)),
        ("bias", 0.5),
    ],
)
def test_t_bounds_cover_the_truth(metric, truth):
    y, pred, group = regression_sample(REPS, 100, seed=7)
    bounds = regression_bounds(metric, y, pred, group, REPS)
    assert bounds.method == "t" and coverage(bounds, truth) >= MIN_COVERAGE


def test_mape_t_bound_covers_the_truth_and_skips_zero_targets():
    rng = np.random.default_rng(8)
    n = 100
    y = rng.uniform(5, 15, REPS * n)
    pred = y * (1 + rng.uniform(-0.2, 0.2, y.size))  # |error| / |y| ~ U(0, 0.2): mean 0.1
    y_zero, pred_zero = np.insert(y, 0, 0.0), np.insert(pred, 0, 3.0)
    group = np.insert(np.repeat(np.arange(REPS), n), 0, 0)
    bounds = regression_bounds("mape", y_zero, pred_zero, group, REPS)
    assert coverage(bounds, 0.1) >= MIN_COVERAGE
    assert np.all(np.isfinite(bounds.low))  # the y = 0 row did not reach the mean


def test_r2_bootstrap_covers_the_truth():
    y, pred, group = regression_sample(BOOT_REPS, 100, seed=9)
    bounds = regression_bounds("r2", y, pred, group, BOOT_REPS, rng=np.random.default_rng(10), resamples=300)
    assert bounds.method == "bootstrap" and coverage(bounds, 1 - 1.25 / 4) >= MIN_COVERAGE


def test_wilson_bounds_equal_the_scalar_wilson_interval():
    successes, n = np.array([0, 3, 17, 50, 0]), np.array([10, 10, 40, 50, 0])
    low, high = wilson_bounds(successes, n, 0.9)
    for k, m, lo, hi in zip(successes, n, low, high):
        assert (lo, hi) == pytest.approx(wilson_interval(int(k), int(m), 0.9), abs=1e-12)


def test_t_bound_equals_scipy_t_interval():
    y, pred, _ = regression_sample(1, 40, seed=11)
    bounds = regression_bounds("bias", y, pred, confidence=0.9)
    error = pred - y
    low, high = stats.t.interval(0.9, error.size - 1, loc=error.mean(), scale=stats.sem(error))
    assert (bounds.low[0], bounds.high[0]) == pytest.approx((low, high), rel=1e-10)


def test_multiclass_precision_and_recall_use_the_bootstrap():
    rng = np.random.default_rng(12)
    y = rng.integers(0, 3, 300)
    pred = np.where(rng.random(300) < 0.7, y, rng.integers(0, 3, 300))
    bounds = classification_bounds("precision", y, pred, 3, rng=np.random.default_rng(13))
    assert bounds.method == "bootstrap" and 0 < bounds.low[0] < bounds.high[0] < 1


def test_bootstrap_is_reproducible_with_the_same_seed():
    y, pred, group = binary_sample(5, 50, seed=14)
    a = classification_bounds("f1", y, pred, 2, group=group, n_groups=5, rng=np.random.default_rng(15))
    b = classification_bounds("f1", y, pred, 2, group=group, n_groups=5, rng=np.random.default_rng(15))
    assert np.array_equal(a.low, b.low) and np.array_equal(a.high, b.high)


def test_a_handful_of_labels_gives_a_wide_interval_that_cannot_prove_a_breach():
    y, pred = np.array([1, 0, 1]), np.array([0, 1, 1])  # accuracy 1/3 on three labels
    bounds = classification_bounds("accuracy", y, pred, 2)
    assert bounds.high[0] > 0.75  # an accuracy floor of 0.75 is not breached on this evidence
    reg = regression_bounds("mae", [1.0, 2.0], [5.0, 9.0])
    assert reg.low[0] == 0.0  # a MAE ceiling is not breached by two rows
    single = regression_bounds("rmse", [1.0], [50.0])
    assert (single.low[0], single.high[0]) == (0.0, math.inf)


def test_large_groups_are_resampled_m_out_of_n_with_a_scaled_spread():
    rng = np.random.default_rng(16)
    n = 4 * BOOTSTRAP_MAX_ROWS
    y = rng.normal(0, 1, n)
    pred = y + rng.normal(0, 1, n)
    bounds = regression_bounds("r2", y, pred, rng=np.random.default_rng(17), resamples=200)
    # R² = 1 - SSE / SST = 0 here; with independent N(0, 1) errors and targets, SSE / n and SST / n
    # each have variance 2 / n, so the standard error of R² is about sqrt(4 / n)
    width = bounds.high[0] - bounds.low[0]
    expected = 2 * 1.96 * math.sqrt(4 / n)
    assert expected / 1.5 < width < expected * 1.5
    assert bounds.low[0] < 0.0 < bounds.high[0] or abs(bounds.low[0]) < width


def test_breach_bound_takes_the_side_that_needs_evidence():
    low, high = np.array([0.6, -0.5, 0.2]), np.array([0.9, 0.4, 0.7])
    assert breach_bound("accuracy", low, high).tolist() == [0.9, 0.4, 0.7]  # a floor: the upper bound
    assert breach_bound("mae", low, high).tolist() == [0.6, -0.5, 0.2]  # a ceiling: the lower bound
    assert breach_bound("bias", [0.2, -0.5, -0.9], [0.7, 0.4, -0.3]).tolist() == [0.2, 0.0, 0.3]  # |value| nearest 0


def test_bound_errors_are_named():
    with pytest.raises(DataError, match="metric 'mae' is a regression metric, not a classification one"):
        classification_bounds("mae", [0], [0], 2)
    with pytest.raises(DataError, match="metric 'accuracy' is a classification metric"):
        regression_bounds("accuracy", [0.0], [0.0])
    with pytest.raises(DataError, match="pass a seeded numpy Generator as rng"):
        classification_bounds("f1", [0, 1], [0, 1], 2)
    with pytest.raises(DataError, match="'roc_auc' needs the model's probabilities"):
        classification_bounds("roc_auc", [0, 1], [0, 1], 2, rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="confidence must be between 0 and 1"):
        regression_bounds("mae", [0.0], [0.0], confidence=1.5)
