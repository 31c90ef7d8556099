"""Champion vs challenger: the metric's direction decides what "better" means."""

from __future__ import annotations

import pytest

from monitoring.core.errors import DataError
from monitoring.domain.training.challenge import judge


def test_a_quality_metric_must_rise_by_an_absolute_amount():
    assert judge("accuracy", 0.80, 0.83, 0.02).better
    verdict = judge("accuracy", 0.80, 0.81, 0.02)
    assert not verdict.better and verdict.gain == pytest.approx(0.01)
    assert "needs 0.02, higher is better" in verdict.reason
    assert judge("r2", -0.5, -0.2, 0.1).better  # R² can be negative: still an absolute gain


def test_an_error_metric_must_fall_by_a_fraction_of_the_champion():
    verdict = judge("mae", 100_000.0, 95_000.0, 0.02)
    assert verdict.better and verdict.gain == pytest.approx(0.05)
    assert "of the champion's value, lower is better" in verdict.reason
    assert not judge("rmse", 10.0, 9.9, 0.02).better  # 1% is not 2%
    assert not judge("log_loss", 0.3, 0.4, 0.0).better  # worse is never better


def test_bias_is_judged_by_its_size():
    assert judge("bias", -40_000.0, 3_000.0, 0.5).better
    assert not judge("bias", 1_000.0, -2_000.0, 0.0).better
    assert judge("bias", 0.0, 0.0, 0.0).better and not judge("bias", 0.0, 0.1, 0.0).better


def test_an_undefined_value_never_wins():
    verdict = judge("roc_auc", None, 0.9, 0.0)
    assert not verdict.better and verdict.reason == "the champion's roc_auc is undefined on the held-out rows"
    assert not judge("accuracy", 0.5, None, 0.0).better


def test_unknown_metric():
    with pytest.raises(DataError, match="unknown metric 'speed'"):
        judge("speed", 1.0, 2.0, 0.0)
