"""Policies know each metric's direction: floors for quality, ceilings for error, bounds that need evidence."""

from __future__ import annotations

import math

import pytest
import yaml
from decisions_support import CRN, HOUR, T0, p_drift, p_min, window

from monitoring.config.metric_registry import headline_metric
from monitoring.config.pipeline import (
    AbsolutePolicy,
    BoundPolicy,
    DriftPolicy,
    RelativeDropPolicy,
    RelativeRisePolicy,
    WilsonPolicy,
    parse_config,
)
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.decisions.decision import decide
from monitoring.domain.decisions.policy_results import FAIL, INSUFFICIENT, PASS, is_breach
from monitoring.domain.decisions.thresholds import evaluate_window
from monitoring.domain.windows.bounds import BoundRequest
from monitoring.domain.windows.headline import bound_requests, policy_metric
from monitoring.domain.windows.results import WindowMetrics
from monitoring.workflows.evaluate import verdict_fields
from tests.project import REPO


def regression(i: int, mae: float | None = 50_000.0, labelled: int = 200, **extra) -> WindowMetrics:
    return WindowMetrics(
        CRN,
        T0 + i * HOUR,
        T0 + (i + 1) * HOUR,
        250,
        labelled,
        mae=mae,
        rmse=None if mae is None else 1.4 * mae,
        **extra,
    )


def one(w, policy, **kw):
    (result,) = evaluate_window(w, [policy], **kw)
    return result


def absolute(metric, **limit):
    return AbsolutePolicy(kind="absolute", metric=metric, **limit)


def test_an_error_metric_has_a_ceiling_exactly_at_it_passes():
    at = one(regression(0, mae=60_000.0), absolute("mae", max=60_000))
    above = one(regression(0, mae=60_000.5), absolute("mae", max=60_000))
    assert (at.status, above.status) == (PASS, FAIL)
    assert above.policy == "absolute mae <= 60,000" and above.reason == "mae 60,000.5 > 60,000"
    assert (above.value, above.threshold, above.metric) == (60_000.5, 60_000, "mae")


def test_bias_is_limited_in_size_both_ways():
    for bias, status in ((-900.0, PASS), (900.0, PASS), (-1_100.0, FAIL), (1_100.0, FAIL)):
        r = one(regression(0, bias=bias), absolute("bias", max=1_000))
        assert r.status == status, bias
    assert one(regression(0, bias=-1_100.0), absolute("bias", max=1_000)).policy == "absolute |bias| <= 1000"


def test_relative_rise_for_error_metrics_and_drop_for_quality():
    rise = RelativeRisePolicy(kind="relative_rise", metric="mae", max_rise=0.2)
    baseline = {"mae": 50_000.0}
    ok = one(regression(0, mae=60_000.0), rise, baseline=baseline)  # exactly 20% above
    bad = one(regression(0, mae=60_001.0), rise, baseline=baseline)
    assert (ok.status, bad.status) == (PASS, FAIL)
    assert math.isclose(bad.threshold, 60_000.0) and bad.bound == 50_000.0
    assert "20% above the training holdout baseline 50,000" in bad.reason
    r2 = RelativeDropPolicy(kind="relative_drop", metric="r2", max_drop=0.1)
    w = regression(0, r2=-0.56)
    assert one(w, r2, baseline={"r2": -0.5}).status == FAIL  # a negative R² falls by growing in size
    assert one(regression(0, r2=-0.54), r2, baseline={"r2": -0.5}).status == PASS


def test_bound_policy_fails_only_when_the_whole_interval_is_past_the_limit():
    policy = BoundPolicy(kind="bound", metric="mae", max=55_000, confidence=0.9)
    wide = regression(0, mae=58_000.0, bounds={"mae@0.9": {"low": 49_000.0, "high": 67_000.0, "method": "t"}})
    narrow = regression(1, mae=58_000.0, bounds={"mae@0.9": {"low": 56_500.0, "high": 59_500.0, "method": "t"}})
    assert one(wide, policy).status == PASS  # the same MAE over a few labels proves nothing
    r = one(narrow, policy)
    assert (r.status, r.bound, r.interval, r.threshold) == (FAIL, 56_500.0, [56_500.0, 59_500.0], 55_000)
    assert r.reason == "mae 58,000 over 200 labels, 90% interval [56,500, 59,500]: lower bound > 55,000"
    floor = BoundPolicy(kind="bound", metric="f1", min=0.7)
    w = window(0, 0.9)  # f1 = 0.87
    w.bounds = {"f1@0.95": {"low": 0.6, "high": 0.69, "method": "bootstrap"}}
    assert one(w, floor).status == FAIL and one(w, floor).bound == 0.69


def test_bound_policy_without_a_computed_bound_is_insufficient_never_nan():
    r = one(regression(0), BoundPolicy(kind="bound", metric="mae", max=1.0))
    assert r.status == INSUFFICIENT and "no 95% bound of mae was computed" in r.reason
    r = one(regression(0, mae=None, labelled=0), BoundPolicy(kind="bound", metric="mae", max=1.0))
    assert r.status == INSUFFICIENT and "mae is undefined" in r.reason


def test_probability_metric_undefined_says_why():
    r = one(window(0), absolute("roc_auc", min=0.7))
    assert r.status == INSUFFICIENT and "probabilities tracked" in r.reason


def test_drift_over_numeric_and_categorical_features():
    drift = {"tenure": {"psi": 0.05, "ks": 0.31}, "contract": {"psi": 0.12, "js": 0.41}}
    w = window(0, drift=drift)
    assert one(w, p_drift(0.25)).status == PASS
    r = one(w, DriftPolicy(kind="drift", max_psi=0.25, max_ks=0.3, max_js=0.4, action="act"))
    assert r.status == FAIL and is_breach([r])
    assert r.reason == "KS above 0.3 for tenure; JS distance above 0.4 for contract (worst contract 0.12)"
    assert r.policy == "drift psi <= 0.25, ks <= 0.3, js <= 0.4 (act)"


def test_decision_on_a_regression_window_names_its_headline_metric():
    policies = [p_min(100), absolute("mae", max=60_000)]
    healthy = decide([regression(0)], policies, 1, 0, 3, [], T0 + 10 * HOUR, "housing", CRN, None, "mae")
    assert healthy.action == "none" and "mae 50,000 over 200 labels passes" in healthy.reason
    assert healthy.metric == "mae" and healthy.values["mae"] == 50_000.0 and "accuracy" not in healthy.values
    breach = decide([regression(0, mae=70_000.0)], policies, 1, 0, 3, [], T0 + 10 * HOUR, "housing", CRN, None, "mae")
    assert breach.action == "redeploy" and "mae 70,000 > 60,000" in breach.reason


def test_mape_says_how_many_rows_it_left_out_in_reasons_decisions_and_the_verdict():
    """109 of 1,014 labelled rows have target 0: MAPE is over the other 905, and on-call reads so."""
    w = regression(0, labelled=1014, mape=0.12, zero_targets=109)
    note = "(109 of 1,014 labelled rows have target 0: left out of MAPE)"
    assert one(w, absolute("mape", max=0.1)).reason == f"mape 0.12 > 0.1 {note}"
    rise = RelativeRisePolicy(kind="relative_rise", metric="mape", max_rise=0.5, baseline="training")
    assert one(w, rise, baseline={"mape": 0.1}).reason.endswith(note)
    assert one(w, absolute("mae", max=60_000)).reason == "mae 50,000 <= 60,000"  # MAE is over every row
    policies = [p_min(100), absolute("mape", max=0.2)]
    healthy = decide([w], policies, 1, 0, 3, [], T0 + 10 * HOUR, "housing", CRN, None, "mape")
    assert f"mape 0.12 over 1014 labels {note} passes" in healthy.reason
    assert healthy.values["zero_targets"] == 109
    fields = verdict_fields(healthy, "v1")
    assert (fields["metric"], fields["value"], fields["zero_targets"]) == ("mape", 0.12, 109)
    by_mae = decide([w], [p_min(100), absolute("mae", max=60_000)], 1, 0, 3, [], T0, "housing", CRN, None, "mae")
    assert "zero_targets" not in verdict_fields(by_mae, "v1") and note not in by_mae.reason


def test_headline_metric_and_the_bounds_compute_accuracy_must_compute():
    policies = [
        p_min(100),
        absolute("mae", max=60_000),
        BoundPolicy(kind="bound", metric="rmse", max=90_000, confidence=0.9),
    ]
    assert policy_metric(policies) == "mae" and headline_metric("regression", policy_metric(policies)) == "mae"
    assert policy_metric([p_min(100)]) is None and policy_metric([]) is None
    assert headline_metric("regression") == "mae" and headline_metric("classification") == "accuracy"
    assert headline_metric("classification", "f1") == "f1"
    with pytest.raises(DataError, match="unknown task 'ranking'"):
        headline_metric("ranking")
    assert bound_requests(policies, "regression") == [BoundRequest("rmse", 0.9), BoundRequest("mae", 0.95)]
    wilson = [WilsonPolicy(kind="wilson", min=0.7, confidence=0.8)]
    assert bound_requests(wilson, "classification") == [BoundRequest("accuracy", 0.8)]


def shipped() -> dict:
    return yaml.safe_load((REPO / "config" / "pipeline.yaml").read_text())


def problems(policies: list[dict], model: dict | None = None) -> list[str]:
    data = shipped()
    data["thresholds"]["policies"] = policies
    data["model"].update(model or {})
    with pytest.raises(ConfigError) as info:
        parse_config(data, "p.yaml")
    return info.value.problems


REGRESSOR = {"task": "regression", "label": "price"}


@pytest.mark.parametrize(
    "policies, model, expected",
    [
        (
            [{"kind": "absolute", "metric": "mae", "max": 5}],
            None,
            "p.yaml: thresholds.policies[0].metric: 'mae' is a regression metric, but model.task is classification",
        ),
        (
            [{"kind": "min_labelled", "min": 5}, {"kind": "wilson", "min": 0.7}],
            REGRESSOR,
            "p.yaml: thresholds.policies[1].metric: 'accuracy' is a classification metric, but model.task is regression",
        ),
        (
            [{"kind": "absolute", "metric": "mae", "min": 5}],
            REGRESSOR,
            "p.yaml: thresholds.policies[0].min: mae is an error metric (lower is better): set max (a ceiling), not min",
        ),
        (
            [{"kind": "bound", "metric": "r2", "max": 0.5}],
            REGRESSOR,
            "p.yaml: thresholds.policies[0].max: r2 is a quality metric (higher is better): set min (a floor), not max",
        ),
        ([{"kind": "absolute", "metric": "rmse"}], REGRESSOR, "p.yaml: thresholds.policies[0]: set max: the ceiling"),
        (
            [{"kind": "relative_drop", "metric": "mae", "max_drop": 0.1}],
            REGRESSOR,
            "use kind relative_rise with max_rise",
        ),
        (
            [{"kind": "relative_rise", "metric": "bias", "max_rise": 0.1}],
            REGRESSOR,
            "bias is centred on 0",
        ),
        (
            [{"kind": "absolute", "metric": "accuracy", "min": 1.5}],
            None,
            "p.yaml: thresholds.policies[0].min: accuracy is at most 1: must be less than or equal to 1",
        ),
    ],
)
def test_config_errors_name_the_key_and_say_what_fits(policies, model, expected):
    found = problems(policies, model)
    assert any(expected in p for p in found), found


def test_a_regression_config_with_error_ceilings_and_bounds_loads():
    data = shipped()
    data["model"].update(REGRESSOR)
    data["thresholds"]["policies"] = [
        {"kind": "min_labelled", "min": 50},
        {"kind": "absolute", "metric": "mae", "max": 90_000},
        {"kind": "bound", "metric": "mape", "max": 0.25, "confidence": 0.9},
        {"kind": "relative_rise", "metric": "rmse", "max_rise": 0.3},
        {"kind": "absolute", "metric": "bias", "max": 20_000},
        {"kind": "drift", "max_psi": 0.3, "max_ks": 0.2},
    ]
    cfg = parse_config(data, "p.yaml")
    assert [p.kind for p in cfg.thresholds.policies][1:3] == ["absolute", "bound"]
    assert cfg.thresholds.policies[1].limit == 90_000
