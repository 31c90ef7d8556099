"""The ``estimated`` policy: performance estimated before labels warns (or acts) on the newest window."""

from __future__ import annotations

import pytest
from decisions_support import CRN, HOUR, T0, p_abs, p_min, window

from monitoring.config.pipeline import EstimatedPolicy, parse_config
from monitoring.core.errors import ConfigError
from monitoring.domain.decisions.decision import decide
from monitoring.domain.decisions.thresholds import evaluate_window

NOW = T0 + 48 * HOUR


def estimated(value: float, rows: int = 250, metric: str = "accuracy") -> dict:
    return {metric: {"value": value, "low": value - 0.03, "high": value + 0.03, "rows": rows}}


def p_est(minimum: float = 0.8, action: str = "warn", metric: str = "accuracy") -> EstimatedPolicy:
    return EstimatedPolicy(kind="estimated", metric=metric, min=minimum, action=action)


def run(windows, policies):
    return decide(windows, policies, 1, 2 * HOUR, 3, [], NOW, "telco", CRN, None)


def with_estimate(w, value, rows=250):
    w.estimated = estimated(value, rows)
    return w


def test_an_estimate_below_its_floor_fails_before_any_label():
    w = with_estimate(window(0, None, labelled=0), 0.62)
    (result,) = evaluate_window(w, [p_est(0.8)])
    assert (result.status, result.action, result.kind) == ("fail", "warn", "estimated")
    assert result.value == 0.62 and result.interval == [pytest.approx(0.59), pytest.approx(0.65)]
    assert "estimated accuracy 0.62 < 0.8 over 250 predictions, before labels" in result.reason
    (ok,) = evaluate_window(with_estimate(window(0, None, labelled=0), 0.85), [p_est(0.8)])
    assert ok.status == "pass"


def test_too_few_rows_or_no_estimate_is_insufficient():
    (few,) = evaluate_window(with_estimate(window(0, None, labelled=0), 0.1, rows=10), [p_est(0.8)])
    assert few.status == "insufficient" and "over 10 rows, 30 required" in few.reason
    (none,) = evaluate_window(window(0, 0.9), [p_est(0.8)])
    assert none.status == "insufficient" and "no estimate of accuracy" in none.reason


def test_the_newest_unlabelled_windows_estimate_warns_while_the_labelled_one_passes():
    windows = [window(0, 0.9), with_estimate(window(1, None, labelled=0), 0.6)]
    d = run(windows, [p_min(100), p_abs(0.8), p_est(0.8)])
    assert d.action == "warn" and d.window_start_ms == T0  # the labelled window decides, its labels pass
    assert "estimated accuracy 0.6 < 0.8 (1.2x)" in d.warnings_text()
    assert "performance estimated before labels" in d.reason


def test_an_estimated_policy_that_acts_is_a_breach():
    windows = [window(0, 0.9), with_estimate(window(1, None, labelled=0), 0.6)]
    d = run(windows, [p_min(100), p_abs(0.8), p_est(0.8, action="act")])
    assert d.action == "redeploy" and "estimated accuracy 0.6 < 0.8" in d.reason


def test_config_names_an_estimable_metric_of_the_task():
    with pytest.raises(ValueError, match="cannot be estimated without labels"):
        EstimatedPolicy(kind="estimated", metric="log_loss", max=0.5)
    base = {
        "model": {"name": "m", "features": ["a"], "label": "y"},
        "thresholds": {"policies": [{"kind": "estimated", "metric": "mae", "max": 3}]},
    }
    with pytest.raises(ConfigError, match=r"thresholds\.policies\[0\]\.metric"):
        parse_config(base)
    base["model"]["task"] = "regression"
    cfg = parse_config(base)
    assert cfg.thresholds.policies[0].action == "warn"
