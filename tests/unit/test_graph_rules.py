"""Job graph rules for any job set (rehearsal or production), alert emails and the webhook's config."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from monitoring.config.graph_rules import (
    COMPUTE_ACCURACY_SCRIPT,
    EVALUATE_SCRIPT,
    GROUND_TRUTH_SCRIPT,
    KNOWN_SCRIPTS,
    REDEPLOY_SCRIPT,
    SIMULATE_TRAFFIC_SCRIPT,
    graph_problems,
)
from monitoring.config.pipeline import JobSpec, parse_config
from monitoring.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def job(name: str, script: str, parent: str | None = None, schedule: str | None = None) -> JobSpec:
    return JobSpec(name=name, script=script, parent=parent, schedule=schedule)


def change(graph: list[JobSpec], index: int, **fields) -> None:
    graph[index] = graph[index].model_copy(update=fields)


def production() -> list[JobSpec]:
    """Ground truth at the head, no simulate_traffic."""
    return [
        job("truth", GROUND_TRUTH_SCRIPT, schedule="0 6 * * *"),
        job("accuracy", COMPUTE_ACCURACY_SCRIPT, "truth"),
        job("evaluate", EVALUATE_SCRIPT, "accuracy"),
        job("redeploy", REDEPLOY_SCRIPT, "evaluate"),
    ]


#: What a graph with the ground-truth job needs besides: where its labels come from.
GROUND_TRUTH = {"source": {"kind": "csv", "path": "crm/*.csv", "time_column": "closed_at"}, "key": "customer_id"}


def config_with(graph: list[dict], **jobs) -> dict:
    data = yaml.safe_load((ROOT / "config/pipeline.yaml").read_text())
    data["jobs"] = {**data["jobs"], **jobs, "graph": graph}
    if any(j.get("script") == GROUND_TRUTH_SCRIPT for j in graph if isinstance(j, dict)):
        data["ground_truth"] = GROUND_TRUTH
    return data


def test_the_known_scripts_are_the_pipeline_jobs():
    assert GROUND_TRUTH_SCRIPT == "jobs/ground_truth.py"
    assert set(KNOWN_SCRIPTS) == {
        SIMULATE_TRAFFIC_SCRIPT,
        GROUND_TRUTH_SCRIPT,
        COMPUTE_ACCURACY_SCRIPT,
        EVALUATE_SCRIPT,
        REDEPLOY_SCRIPT,
    }
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "jobs").glob("*.py")}
    assert set(KNOWN_SCRIPTS) == shipped


def test_a_production_graph_with_ground_truth_at_the_head_is_valid_and_loads():
    assert graph_problems(production()) == []
    cfg = parse_config(config_with([s.model_dump(exclude_none=True) for s in production()]))
    assert [j.script for j in cfg.jobs.graph][0] == GROUND_TRUTH_SCRIPT
    assert SIMULATE_TRAFFIC_SCRIPT not in {j.script for j in cfg.jobs.graph}
    data = config_with([s.model_dump(exclude_none=True) for s in production()])
    del data["ground_truth"]
    with pytest.raises(
        ConfigError,
        match="ground_truth: jobs.graph runs jobs/ground_truth.py but the config has no ground_truth section",
    ):
        parse_config(data)


def test_a_graph_of_the_head_alone_or_without_redeploy_is_valid():
    assert graph_problems(production()[:1]) == []
    assert graph_problems(production()[:3]) == []


@pytest.mark.parametrize(
    "edit, problem",
    [
        (
            lambda g: change(g, 1, script="jobs/compute_acuracy.py"),
            "job 'accuracy': script 'jobs/compute_acuracy.py' is not a cml-monitor job (one of jobs/simulate_traffic.py",
        ),
        (
            lambda g: change(g, 3, script=COMPUTE_ACCURACY_SCRIPT),
            "job 'redeploy': script 'jobs/compute_accuracy.py' is already the script of job 'accuracy'",
        ),
        (
            lambda g: change(g, 2, parent=None),
            "jobs 'truth', 'evaluate' have no parent: a graph has one head (the scheduled job)",
        ),
        (lambda g: change(g, 0, schedule=None), "job 'truth': the head job (no parent) needs a schedule"),
        (
            lambda g: (change(g, 1, parent="evaluate"), change(g, 2, parent="truth")),
            "job 'accuracy' (jobs/compute_accuracy.py) cannot run after job 'evaluate' (jobs/evaluate_thresholds.py): "
            "a chain runs a feed (simulate_traffic or ground_truth) -> compute_accuracy",
        ),
    ],
    ids=["unknown script", "script twice", "two heads", "head without schedule", "stages reversed"],
)
def test_a_broken_job_set_is_named_job_by_job(edit, problem):
    graph = production()
    edit(graph)
    problems = graph_problems(graph)
    assert problem in "\n".join(problems), problems


def test_a_cycle_is_reported_once_and_not_again_as_a_missing_head():
    graph = production()
    change(graph, 0, parent="redeploy", schedule=None)
    problems = graph_problems(graph)
    assert problems.count("dependency cycle: accuracy -> truth -> redeploy -> evaluate -> accuracy") == 1
    assert not [p for p in problems if "head" in p], problems


def test_with_trigger_api_redeploy_stands_alone_without_parent_or_schedule():
    graph = production()
    change(graph, 3, parent=None)
    assert graph_problems(graph, standalone=[REDEPLOY_SCRIPT]) == []
    assert "'truth', 'redeploy' have no parent" in "".join(graph_problems(graph))
    data = config_with([s.model_dump(exclude_none=True) for s in graph], trigger="api")
    assert parse_config(data).jobs.standalone_scripts() == (REDEPLOY_SCRIPT,)


def test_config_errors_name_the_file_and_the_job():
    graph = [s.model_dump(exclude_none=True) for s in production()]
    graph[1]["script"] = "jobs/nope.py"
    with pytest.raises(ConfigError, match=r"prod.yaml: jobs: .*job 'accuracy': script 'jobs/nope.py' is not"):
        parse_config(config_with(graph), "prod.yaml")


# -- alert emails ------------------------------------------------------------------------------
def test_alert_emails_default_for_every_job_a_job_list_replaces_it_and_an_empty_list_silences():
    graph = [s.model_dump(exclude_none=True) for s in production()]
    graph[2]["alert_emails"] = ["ml-team@example.com", "ml-team@example.com"]
    graph[3]["alert_emails"] = []
    cfg = parse_config(config_with(graph, alert_emails=["oncall@example.com"]))
    assert [cfg.jobs.recipients(j) for j in cfg.jobs.graph] == [
        ["oncall@example.com"],
        ["oncall@example.com"],
        ["ml-team@example.com"],  # duplicates dropped
        [],
    ]


@pytest.mark.parametrize("bad", ["oncall", "a@b.c, d@e.f", "a b@c.d", "<a@b.c>"])
def test_an_address_that_is_not_one_email_is_rejected_with_its_path(bad):
    graph = [s.model_dump(exclude_none=True) for s in production()]
    graph[1]["alert_emails"] = [bad]
    with pytest.raises(ConfigError, match=r"p.yaml: jobs.graph\[1\].alert_emails: not an email address"):
        parse_config(config_with(graph), "p.yaml")
    with pytest.raises(ConfigError, match=r"jobs.alert_emails: not an email address"):
        parse_config(config_with(production_dicts(), alert_emails=[bad]))


def production_dicts() -> list[dict]:
    return [s.model_dump(exclude_none=True) for s in production()]


# -- the webhook's config -----------------------------------------------------------------------
def test_the_webhook_is_off_by_default_and_names_a_variable_never_a_url():
    data = config_with(production_dicts())
    assert parse_config(data).alerts.webhook.url_env is None
    data["alerts"] = {"webhook": {"url_env": "https://hooks.example.com/T000/B000/XXXX"}}
    with pytest.raises(ConfigError, match=r"alerts.webhook.url_env: .* is not an environment variable name"):
        parse_config(data)
    data["alerts"] = {"webhook": {"url_env": "ONCALL_HOOK", "events": ["breach", "deployed"], "budget": "5s"}}
    hook = parse_config(data).alerts.webhook
    assert (hook.url_env, hook.events, hook.budget.total_seconds()) == ("ONCALL_HOOK", ["breach", "deployed"], 5.0)
    data["alerts"]["webhook"]["events"] = ["breach", "panic"]
    with pytest.raises(ConfigError, match=r"alerts.webhook.events\[1\]"):
        parse_config(data)
