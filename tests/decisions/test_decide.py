"""decide(): the decisive window, consecutive breaches, cooldown, the 24 h cap, drift warnings."""

from __future__ import annotations

import json

import pytest
from decisions_support import CRN, HOUR, T0, p_abs, p_drift, p_min, p_wilson, window

from monitoring.config.pipeline import DriftPolicy
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.decisions.decision import DAY_MS, Action, Decision, decide, format_decisions

POLICIES = [p_min(100), p_abs(0.8)]
COOLDOWN = 2 * HOUR
NOW = T0 + 48 * HOUR


def run(windows, policies=POLICIES, consecutive=1, cooldown_ms=COOLDOWN, max_per_day=3, redeploys=(), now=NOW):
    return decide(windows, policies, consecutive, cooldown_ms, max_per_day, list(redeploys), now, "telco", CRN, None)


def test_healthy_window_means_no_action():
    d = run([window(0, 0.9), window(1, 0.85)])
    assert d.action == "none" and d.id is None and d.created_ms == NOW
    assert (d.window_start_ms, d.window_end_ms) == (T0 + HOUR, T0 + 2 * HOUR)
    assert d.values == pytest.approx(
        {"accuracy": 0.85, "precision": 0.8, "recall": 0.83, "f1": 0.82, "labelled": 200, "predictions": 250}
    )
    assert d.reason == (
        "window 2025-11-23T09:00:00Z..2025-11-23T10:00:00Z: accuracy 0.85 over 200 labels passes "
        "all policies; healthy, no action."
    )


def test_no_windows_and_no_evaluable_window_are_insufficient_data():
    assert run([]).action == "insufficient_data"
    d = run([window(0, 0.1, labelled=37), window(1, 0.1, labelled=99)])
    assert d.action == "insufficient_data"
    assert "99 labelled of 100 required" in d.reason and d.reason.endswith("wait for labels to arrive.")
    assert d.window_start_ms == T0 + HOUR


def test_decisive_window_is_latest_evaluable_not_latest():
    d = run([window(0, 0.6), window(1, 0.95, labelled=5)])
    assert d.action == "redeploy" and d.window_start_ms == T0
    assert "(latest evaluable)" in d.reason and "accuracy 0.6 < 0.8" in d.reason


def test_consecutive_windows_needed_before_redeploy():
    first = run([window(0, 0.9), window(1, 0.6)], consecutive=2)
    assert first.action == "pending" and (first.breaches, first.consecutive, first.streak()) == (1, 2, "1 of 2")
    assert "breach 1 of 2 consecutive breaching windows needed" in first.reason and "no redeploy yet" in first.reason
    second = run([window(0, 0.7), window(1, 0.6)], consecutive=2)
    assert second.action == "redeploy" and second.streak() == "2 of 2"
    # an insufficient window in between neither breaks nor extends the streak
    assert run([window(0, 0.7), window(1, 0.99, labelled=3), window(2, 0.6)], consecutive=2).action == "redeploy"
    assert run([window(0, 0.7), window(1, 0.9), window(2, 0.6)], consecutive=2).action == "pending"
    assert run([window(0, 0.6)], consecutive=2).action == "pending"
    three = run([window(0, 0.7), window(1, 0.6)], consecutive=3)
    assert three.action == "pending" and three.streak() == "2 of 3"
    healthy = run([window(0, 0.6), window(1, 0.9)], consecutive=2)
    assert healthy.action == "none" and healthy.breaches == 0 and healthy.streak() is None


def test_cooldown_boundary_exactly_at_cooldown_is_allowed():
    breach = [window(0, 0.6)]
    assert run(breach, redeploys=[NOW - COOLDOWN]).action == "redeploy"
    d = run(breach, redeploys=[NOW - COOLDOWN + 1])
    assert d.action == "suppressed"
    assert "inside the cooldown of 2h" in d.reason and "last redeploy was at 2025-11-25T06:00:00Z" in d.reason
    assert "a run after 2025-11-25T08:00:00Z redeploys" in d.reason


def test_daily_cap_counts_only_the_last_rolling_24_hours():
    breach = [window(0, 0.6)]
    older = [NOW - 10 * HOUR, NOW - 5 * HOUR]
    assert run(breach, redeploys=[NOW - DAY_MS, *older]).action == "redeploy"  # exactly 24 h ago: not counted
    d = run(breach, redeploys=[NOW - DAY_MS + 1, *older])
    assert d.action == "suppressed"
    assert "3 redeploys in the last 24h reached max_redeploys_per_day=3" in d.reason
    assert "next allowed after 2025-11-25T08:00:00Z" in d.reason  # when the oldest leaves the window (+1 ms)
    assert "check the input data and the labels" in d.reason


def test_redeploys_in_the_future_are_ignored_and_cap_zero_disables():
    assert run([window(0, 0.6)], redeploys=[NOW + 1]).action == "redeploy"
    d = run([window(0, 0.6)], max_per_day=0)
    assert d.action == "suppressed" and "disabled (max_redeploys_per_day is 0)" in d.reason


def test_drift_warn_on_healthy_window_warns_act_redeploys():
    drift = {"iot_signal_3": {"psi": 0.4, "ks": 0.3}}
    warn = run([window(0, 0.9, drift=drift)], policies=[*POLICIES, p_drift(0.25, "warn")])
    assert warn.action == "warn" and "iot_signal_3" in warn.reason and "no redeploy" in warn.reason
    act = run([window(0, 0.9, drift=drift)], policies=[*POLICIES, p_drift(0.25, "act")])
    assert act.action == "redeploy"
    both = run([window(0, 0.6, drift=drift)], policies=[*POLICIES, p_drift(0.25, "warn")])
    assert both.action == "redeploy" and "PSI above" not in both.reason


def test_failed_warn_checks_are_ranked_in_the_reason_and_the_record_whatever_the_action():
    drift = {
        "tenure": {"psi": 0.3, "ks": 0.5},  # KS 0.5 of 0.2 (2.5x) is its worst
        "Contract": {"psi": 1.4, "js": 0.1},  # PSI 1.4 of 0.25: 5.6x
        "city": {"psi": 0.26},  # just over: 1.04x
        "age": {"psi": 0.5},  # 2x
        "calm": {"psi": 0.1, "ks": 0.05},
    }
    drift_policy = DriftPolicy(kind="drift", max_psi=0.25, max_ks=0.2, action="warn")
    policies = [*POLICIES, drift_policy]
    for accuracy, labelled, action in ((0.6, 200, "redeploy"), (0.9, 200, "warn"), (0.9, 10, "insufficient_data")):
        d = run([window(0, accuracy, labelled=labelled, drift=drift)], policies=policies)
        assert d.action == action
        ranked = [(w.subject, w.statistic) for w in d.warnings]
        assert ranked == [("Contract", "psi"), ("tenure", "ks"), ("age", "psi"), ("city", "psi")], action
        assert d.warnings[0].severity == pytest.approx(5.6) and d.warnings[0].value == 1.4
        text = d.warnings_text()
        assert text == ("Contract psi 1.4 > 0.25 (5.6x); tenure ks 0.5 > 0.2 (2.5x); age psi 0.5 > 0.25 (2x); +1 more")
        assert text in d.reason, d.reason
        back = Decision.from_dict(json.loads(json.dumps(d.to_dict(), allow_nan=False)))
        assert back.warnings == d.warnings
    pending = run([window(0, 0.6, drift=drift)], policies=policies, consecutive=2)
    assert pending.action == "pending" and pending.reason.endswith(
        "Warn-only checks failed, worst first: " + pending.warnings_text() + "."
    )
    act = run([window(0, 0.9, drift=drift)], policies=[*POLICIES, p_drift(0.25, "act")])
    assert act.action == "redeploy" and act.warnings == []  # a failing "act" drift policy is a breach, not a warning
    assert run([window(0, 0.9)], policies=policies).warnings == []
    assert Decision.from_dict({k: v for k, v in pending.to_dict().items() if k != "warnings"}).warnings == []


def test_wilson_tiny_sample_never_redeploys():
    assert run([window(0, 0.5, labelled=10)], policies=[p_wilson(0.75)]).action == "none"
    assert run([window(0, 0.5, labelled=1000)], policies=[p_wilson(0.75)]).action == "redeploy"


def test_decision_round_trips_through_json():
    d = run([window(0, 0.6)])
    d.values["accuracy"] = float("nan")
    data = json.loads(json.dumps(d.to_dict(), allow_nan=False))
    assert data["values"]["accuracy"] is None
    assert data["action"] == "redeploy" and type(data["action"]) is str
    back = Decision.from_dict(data)
    assert back.results == d.results and back.action is Action.REDEPLOY and back.reason == d.reason


def test_actions_are_an_enum_whose_text_is_the_stored_and_printed_value():
    assert [a.value for a in Action] == [
        "none",
        "insufficient_data",
        "warn",
        "redeploy",
        "suppressed",
        "pending",
        "rollback",
    ]
    assert f"{Action.INSUFFICIENT_DATA}" == str(Action.INSUFFICIENT_DATA) == "insufficient_data"
    assert json.dumps(Action.WARN) == '"warn"'
    d = Decision.from_dict({**run([window(0, 0.6)]).to_dict(), "action": "suppressed"})
    assert d.action is Action.SUPPRESSED
    with pytest.raises(
        DataError, match=r"decision d-1: unknown action 'retrain'; expected one of none, .*, suppressed"
    ):
        Decision.from_dict({**d.to_dict(), "id": "d-1", "action": "retrain"})


def test_format_decisions_table_and_json():
    d = run([window(0, 0.6)])
    d.id, d.outcome = "d-20251125080000-abcdef", "deployed"
    table = format_decisions([d]).splitlines()
    assert table[0].split() == ["ID", "CREATED", "MODEL", "ACTION", "METRIC", "LABELLED", "OUTCOME", "REASON"]
    assert table[1].split()[:7] == [
        "d-20251125080000-abcdef",
        "2025-11-25T08:00:00Z",
        "telco",
        "redeploy",
        "accuracy=0.6",
        "200",
        "deployed",
    ]
    assert json.loads(format_decisions([d], "json"))[0]["id"] == d.id
    assert format_decisions([]).endswith("(no decisions recorded)")
    with pytest.raises(ConfigError, match="--format: expected one of table, json, got 'yaml'"):
        format_decisions([d], "yaml")
