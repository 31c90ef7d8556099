"""Progress for long work, and the fields the evaluate verdict shows on-call."""

import io
import logging

from monitoring.core.progress import Progress
from monitoring.domain.decisions.decision import Decision
from monitoring.domain.decisions.policy_results import PolicyResult
from monitoring.workflows.evaluate import verdict_fields


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_draws_a_bar_on_a_terminal():
    stream = Tty()
    progress = Progress("predictions", total=4, stream=stream)
    for _ in range(4):
        progress.advance()
    progress.done()
    assert stream.getvalue().endswith("\rpredictions [" + "#" * 30 + "] 4/4\n")


def test_progress_logs_a_few_lines_without_a_terminal(caplog):
    caplog.set_level(logging.INFO, logger="monitoring.core.progress")
    progress = Progress("labels", total=1000, stream=io.StringIO())
    for _ in range(1000):
        progress.advance()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "progress task=labels done=250 total=1000",
        "progress task=labels done=500 total=1000",
        "progress task=labels done=750 total=1000",
    ]


def _decision(results):
    return Decision(
        id="d-1",
        created_ms=0,
        model="m",
        deployment_crn="crn:cdp:ml:x:workspace:w/dep-9",
        window_start_ms=1_790_002_800_000,
        window_end_ms=1_790_006_400_000,
        values={"accuracy": 0.61, "labelled": 250},
        results=results,
        action="redeploy",
        reason="r",
    )


def test_evaluate_verdict_names_window_value_bound_threshold():
    results = [
        PolicyResult("min_labelled >= 100", "pass", 250, None, 100, "ok", kind="min_labelled"),
        PolicyResult("absolute accuracy >= 0.8", "fail", 0.61, None, 0.8, "below", kind="absolute"),
        PolicyResult("wilson", "fail", 0.61, 0.6712, 0.75, "below", kind="wilson"),
    ]
    fields = verdict_fields(_decision(results), "v1")
    assert fields["window"] == "2026-09-21T15:00:00Z..2026-09-21T16:00:00Z"
    assert fields["deployment"] == "dep-9" and fields["labelled"] == 250
    assert (fields["policy"], fields["value"], fields["threshold"]) == ("absolute accuracy >= 0.8", 0.61, 0.8)


def test_warn_only_failures_are_not_shown_as_the_decisive_policy():
    results = [
        PolicyResult("drift psi <= 0.25", "fail", 0.4, None, 0.25, "drift", kind="drift", action="warn"),
        PolicyResult("absolute accuracy >= 0.8", "pass", 0.9, None, 0.8, "ok", kind="absolute"),
    ]
    assert verdict_fields(_decision(results), "v1")["policy"] == "absolute accuracy >= 0.8"


def test_a_healthy_regression_verdict_shows_its_headline_metric_policy():
    results = [
        PolicyResult("min_labelled >= 50", "pass", 120, None, 50, "ok", kind="min_labelled"),
        PolicyResult("drift psi <= 0.25", "pass", 0.1, None, 0.25, "ok", kind="drift", action="warn"),
        PolicyResult(
            "bound mae lower bound (90%) <= 90,000",
            "pass",
            61_250.5,
            55_000.25,
            90_000,
            "ok",
            kind="bound",
            metric="mae",
        ),
    ]
    decision = _decision(results)
    decision.metric, decision.values = "mae", {"mae": 61_250.5, "labelled": 120}
    fields = verdict_fields(decision, "v3")
    assert fields["metric"] == "mae" and fields["policy"] == "bound mae lower bound (90%) <= 90,000"
    assert (fields["value"], fields["bound"], fields["threshold"]) == (61_250.5, 55_000.25, 90_000)


def test_the_smoke_call_answer_must_fit_the_task():
    from monitoring.config.model_spec import ModelConfig
    from monitoring.workflows.release import prediction_problem

    churn = ModelConfig.model_validate(
        {"name": "c", "features": ["a"], "label": {"name": "y", "classes": ["No", "Yes"], "mapping": {"1": "Yes"}}}
    )
    assert [prediction_problem(p, churn) for p in ("Yes", "No", ["Yes"], 1)] == [None] * 4  # 1: mapped
    assert prediction_problem("Maybe", churn) == "expected one of ['No', 'Yes']"
    assert prediction_problem({"class": "Yes"}, churn) == "expected one of ['No', 'Yes']"
    telco = ModelConfig.model_validate({"name": "t", "features": ["a"], "label": "y"})
    assert [prediction_problem(p, telco) for p in (0, 1, "1", 1.0)] == [None] * 4
    assert prediction_problem(2, telco) is not None and prediction_problem(None, telco) is not None
    housing = ModelConfig.model_validate({"name": "h", "task": "regression", "features": ["a"], "label": "price"})
    assert prediction_problem(412_000.5, housing) is None and prediction_problem(3, housing) is None
    for bad in ("412000", float("nan"), float("inf"), True, None, [1.0]):
        assert prediction_problem(bad, housing) == "expected a finite number (a regression model)", bad


def test_the_demo_summary_shows_the_headline_metric_as_people_read_it():
    from monitoring.app.demo import shown

    assert shown("accuracy", 0.91234) == "0.912"  # the telco demo's column, unchanged
    assert shown("r2", 0.5) == "0.5" and shown("f1", 1.0) == "1.000"  # r2 is unbounded below: 4 digits
    assert shown("mae", 61_250.5) == "61,250.5" and shown("mape", 0.1834) == "0.1834"
    assert shown("mae", None) == "-"


def test_the_demo_stops_at_the_cycle_whose_traffic_run_found_the_replay_exhausted():
    from monitoring.app.demo import replay_over, verdict_fields
    from monitoring.core.logs import verdict_line

    def line(status: str, **fields) -> dict[str, str]:
        return verdict_fields(verdict_line("simulate_traffic", status, "sent", "none", **fields))

    evaluate = verdict_fields(verdict_line("evaluate_thresholds", "breach", "x", "none", decision_action="redeploy"))
    assert replay_over([line("replay_exhausted", predictions=0, replay_exhausted=True), evaluate])
    assert not replay_over([line("ok", predictions=120, replay_to=4000), evaluate])
    assert not replay_over([])
