"""Each threshold policy at its edges."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
from decisions_support import CRN, p_abs, p_drift, p_min, p_rel, p_wilson, window

from monitoring.core.errors import DataError
from monitoring.domain.decisions.policy_results import FAIL, INSUFFICIENT, PASS, is_breach, is_evaluable
from monitoring.domain.decisions.thresholds import evaluate_window
from monitoring.domain.windows.bounds import wilson_interval
from monitoring.domain.windows.results import WindowMetrics


def one(w, policy, **kw):
    (result,) = evaluate_window(w, [policy], **kw)
    return result


# -- min_labelled ---------------------------------------------------------------------------------
def test_one_label_short_of_min_labelled_is_insufficient_and_silences_metric_policies():
    results = evaluate_window(window(0, accuracy=0.1, labelled=99), [p_min(100), p_abs(0.8), p_wilson(0.75)])
    assert [r.status for r in results] == [INSUFFICIENT, INSUFFICIENT, INSUFFICIENT]
    assert "99 labelled of 100" in results[0].reason
    assert "only 99 labelled of 100" in results[1].reason
    assert not is_evaluable(results) and not is_breach(results)


def test_exactly_min_labelled_passes_and_metrics_are_judged():
    results = evaluate_window(window(0, accuracy=0.1, labelled=100), [p_min(100), p_abs(0.8)])
    assert [r.status for r in results] == [PASS, FAIL]
    assert is_evaluable(results) and is_breach(results)


# -- absolute -------------------------------------------------------------------------------------
def test_absolute_exactly_at_minimum_passes():
    r = one(window(0, accuracy=80 / 100), p_abs(0.8))
    assert (r.status, r.value, r.threshold, r.policy) == (PASS, 0.8, 0.8, "absolute accuracy >= 0.8")


def test_absolute_just_below_minimum_fails():
    r = one(window(0, accuracy=79 / 100), p_abs(0.8))
    assert r.status == FAIL
    assert r.reason == "accuracy 0.79 < 0.8"


def test_absolute_on_other_metric_and_undefined_metric():
    w = window(0, accuracy=0.9)  # precision = 0.85
    assert one(w, p_abs(0.86, "precision")).status == FAIL
    assert one(w, p_abs(0.85, "precision")).status == PASS
    r = one(window(0, accuracy=None, labelled=0), p_abs(0.8))
    assert r.status == INSUFFICIENT and "undefined" in r.reason


# -- relative drop ---------------------------------------------------------------------------------
def test_relative_drop_boundary_against_training_baseline():
    baseline = {"accuracy": 0.9}  # limit 0.9 * (1 - 0.1) = 0.81 (0.8100000000000001 in floats)
    at = one(window(0, accuracy=0.81), p_rel(0.1), baseline=baseline)
    below = one(window(0, accuracy=0.8099), p_rel(0.1), baseline=baseline)
    assert at.status == PASS and below.status == FAIL
    assert math.isclose(below.threshold, 0.81) and below.bound == 0.9
    assert "training holdout baseline 0.9" in below.reason


def test_relative_drop_without_training_baseline_is_insufficient():
    r = one(window(0, accuracy=0.5), p_rel(0.1), baseline=None)
    assert r.status == INSUFFICIENT and r.reason == "no training baseline for accuracy"


def test_relative_drop_first_windows_waits_for_k_labelled_windows():
    policies = [p_min(100), p_rel(0.1, "first_windows", k=3)]
    # the middle window is below min_labelled: it does not count towards the baseline
    first = [window(0, 0.9), window(1, 0.1, labelled=50), window(2, 0.8)]
    r = evaluate_window(window(3, 0.5), policies, first_windows=first)[1]
    assert r.status == INSUFFICIENT and r.reason == "baseline needs 3 labelled windows, 2 so far"
    first.append(window(3, 0.7))
    mean = (0.9 + 0.8 + 0.7) / 3  # 0.8 -> limit 0.72
    ok = evaluate_window(window(4, 0.72), policies, first_windows=first)[1]
    bad = evaluate_window(window(4, 0.7199), policies, first_windows=first)[1]
    assert (ok.status, bad.status) == (PASS, FAIL)
    assert math.isclose(bad.bound, mean) and math.isclose(bad.threshold, 0.72)


# -- wilson -----------------------------------------------------------------------------------------
def test_wilson_interval_known_value():
    low, high = wilson_interval(8, 10, 0.95)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    assert wilson_interval(0, 0, 0.95) == (0.0, 1.0)
    with pytest.raises(ValueError, match="need 0 <= successes <= n"):
        wilson_interval(11, 10, 0.95)


def test_wilson_tiny_sample_does_not_fail_but_large_sample_at_same_accuracy_does():
    tiny = one(window(0, accuracy=0.6, labelled=10), p_wilson(0.75))
    large = one(window(0, accuracy=0.6, labelled=1000), p_wilson(0.75))
    assert tiny.status == PASS and large.status == FAIL
    low, high = tiny.interval
    assert low < 0.6 < 0.75 < high and tiny.bound == high
    assert large.interval[1] < 0.75 and large.bound == large.interval[1]
    assert "upper bound < 0.75" in large.reason


def test_wilson_upper_bound_exactly_at_minimum_passes():
    _, high = wilson_interval(60, 100, 0.95)
    assert one(window(0, accuracy=0.6, labelled=100), p_wilson(high)).status == PASS
    assert one(window(0, accuracy=0.6, labelled=100), p_wilson(high + 1e-6)).status == FAIL


# -- drift -------------------------------------------------------------------------------------------
def drifted(psi: float) -> WindowMetrics:
    return window(0, drift={"iot_signal_1": {"psi": 0.01, "ks": 0.02}, "iot_signal_2": {"psi": psi, "ks": 0.3}})


def test_drift_exactly_at_max_psi_passes_above_fails():
    assert one(drifted(0.25), p_drift(0.25)).status == PASS
    r = one(drifted(0.2501), p_drift(0.25))
    assert (r.status, r.value, r.action) == (FAIL, 0.2501, "warn")
    assert r.reason == "PSI above 0.25 for iot_signal_2 (worst iot_signal_2 0.2501)"


def test_drift_warn_never_breaches_act_does():
    assert not is_breach(evaluate_window(drifted(0.9), [p_abs(0.8), p_drift(0.25, "warn")]))
    assert is_breach(evaluate_window(drifted(0.9), [p_abs(0.8), p_drift(0.25, "act")]))


def test_drift_without_statistics_is_insufficient():
    assert one(window(0), p_drift()).status == INSUFFICIENT


def test_drift_alone_makes_a_window_evaluable_only_without_label_policies():
    no_labels = window(0, accuracy=None, labelled=0, drift={"a": {"psi": 0.1, "ks": 0.1}})
    assert is_evaluable(evaluate_window(no_labels, [p_drift()]))
    assert not is_evaluable(evaluate_window(no_labels, [p_abs(), p_drift()]))


# -- window metrics ---------------------------------------------------------------------------------------
def test_window_metrics_from_object_dict_and_nan():
    obj = SimpleNamespace(
        deployment_crn=CRN,
        start_ms=1,
        end_ms=2,
        predictions=5,
        labelled=4,
        accuracy=float("nan"),
        precision=0.5,
        recall=None,
        f1=0.4,
        confusion={"tp": 1},
        drift={"x": {"psi": 0.1, "ks": 0.2}},
    )
    row = WindowMetrics.from_obj(obj)
    assert row.accuracy is None and row.precision == 0.5 and row.drift == {"x": {"psi": 0.1, "ks": 0.2}}
    assert row.scores() == {"precision": 0.5, "f1": 0.4}  # only the defined ones, in METRICS order
    assert WindowMetrics.from_obj(row.to_dict()) == row and WindowMetrics.from_obj(row) is row
    with pytest.raises(DataError, match="missing required field"):
        WindowMetrics.from_obj({"deployment_crn": CRN, "start_ms": 1})


def test_unknown_policy_type_is_a_type_error():
    with pytest.raises(TypeError, match="no evaluator"):
        evaluate_window(window(0), [object()])
