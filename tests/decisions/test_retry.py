"""A rejected challenger is not retried on the same evidence: a redeploy waits for new labelled windows."""

from __future__ import annotations

from types import SimpleNamespace

from monitoring.domain.decisions.decision import Action, Decision
from monitoring.domain.decisions.retry import retry_blocker

HOUR = 3_600_000


def _decision(action: Action, outcome: str | None, window_end: int, id_: str = "d1") -> Decision:
    return Decision(id_, window_end, "m", "crn", window_end - HOUR, window_end, {}, [], action, "", "run", outcome)


def _windows(*starts_and_labels):
    return [SimpleNamespace(start_ms=s, labelled=n) for s, n in starts_and_labels]


def test_a_rejected_challenger_holds_back_the_next_redeploy_until_enough_new_labelled_windows():
    rejected = [_decision(Action.REDEPLOY, "rejected", 5 * HOUR)]
    old = _windows((3 * HOUR, 50), (4 * HOUR, 50))
    why = retry_blocker(rejected, old, 2)
    assert why is not None and "waits for 2 new labelled windows" in why and "0 so far" in why
    one_new = old + _windows((5 * HOUR, 40), (6 * HOUR, 0))  # a window without labels is no evidence
    assert "1 so far" in retry_blocker(rejected, one_new, 2)
    assert retry_blocker(rejected, one_new + _windows((7 * HOUR, 30)), 2) is None
    assert retry_blocker(rejected, old, 0) is None  # retry_after_windows 0: retry at once


def test_only_the_last_acted_redeploy_counts():
    deployed_after = [
        _decision(Action.REDEPLOY, "deployed", 8 * HOUR, "d2"),
        _decision(Action.REDEPLOY, "rejected", 5 * HOUR),
    ]
    assert retry_blocker(deployed_after, _windows((3 * HOUR, 50)), 2) is None
    others_first = [
        _decision(Action.SUPPRESSED, None, 9 * HOUR, "d3"),
        _decision(Action.REDEPLOY, None, 9 * HOUR, "d4"),  # not acted on yet
        _decision(Action.REDEPLOY, "rejected", 5 * HOUR),
    ]
    assert retry_blocker(others_first, _windows((3 * HOUR, 50)), 1) is not None
    assert retry_blocker([], [], 2) is None
