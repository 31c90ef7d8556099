"""The job graph on real local workspaces: plan, apply (idempotent, only managed jobs), export, AMP."""

from __future__ import annotations

import json

import pytest
import yaml

from monitoring.app import cli, graph
from monitoring.app.amp import amp_metadata
from monitoring.config.pipeline import JobSpec, load_config
from monitoring.core.errors import ConfigError
from tests.cmlclient.support import enter_workspace
from tests.graph.support import REPO, SECRET, api_for, config, names, writes
from tests.project import MINIMAL


def jobs_by_name(api) -> dict:
    return {j.name: j for j in api.jobs()}


def test_plan_lists_every_job_and_changes_nothing(workspace):
    api, cfg = api_for(workspace("a")), config()
    changes = graph.plan(api, cfg)
    assert [(c.action, c.name) for c in changes] == [("create", n) for n in names(cfg)]
    assert [c.line() for c in changes][0] == "create    cml-monitor simulate_traffic"
    assert writes(api) == [] and api.jobs() == []


def test_apply_creates_the_chain_parents_first_with_the_schedule_on_the_head_only(workspace):
    api, cfg = api_for(workspace("a")), config()
    graph.apply(api, cfg)
    created = [c.body["name"] for c in api.client.named("create_job")]
    assert created == names(cfg)
    jobs = jobs_by_name(api)
    head, *dependents = (jobs[n] for n in names(cfg))
    assert (head.schedule, head.timezone, head.type) == ("0 * * * *", "UTC", "cron")
    for parent, child in zip([head, *dependents], dependents):
        assert child.parent_id == parent.id and child.type == "dependent"
        assert not child.schedule
    assert all(j.environment[graph.MANAGED_ENV] == "true" for j in jobs.values())
    assert jobs["cml-monitor redeploy"].memory == 4.0


def test_applying_twice_creates_no_duplicates_and_reports_unchanged(workspace):
    api, cfg = api_for(workspace("a")), config()
    graph.apply(api, cfg)
    api.client.calls.clear()
    assert {c.action for c in graph.apply(api, cfg)} == {"unchanged"}
    assert writes(api) == [] and sorted(j.name for j in api.jobs()) == sorted(names(cfg))


def test_a_changed_graph_updates_only_the_changed_fields(workspace):
    api = api_for(workspace("a"))
    graph.apply(api, config())

    def edit(data):
        data["jobs"]["graph"][0]["schedule"] = "30 */2 * * *"
        data["jobs"]["graph"][1]["cpu"] = 2
        data["jobs"]["graph"][1]["environment"]["LOG_FORMAT"] = "json"
        data["jobs"]["graph"][3]["timeout"] = 7200
        data["jobs"]["trigger"] = "api"  # redeploy is started through the API: no parent any more
        data["jobs"]["graph"][3].pop("parent")

    cfg = config(edit)
    changes = {c.name: c for c in graph.plan(api, cfg)}
    assert changes["cml-monitor simulate_traffic"].changes == {"schedule": "30 */2 * * *"}
    assert set(changes["cml-monitor compute_accuracy"].changes) == {"cpu", "environment"}
    assert changes["cml-monitor redeploy"].changes == {"timeout": 7200, "parent": None}
    assert changes["cml-monitor evaluate_thresholds"].action == "unchanged"
    api.client.calls.clear()
    graph.apply(api, cfg)
    bodies = {c.kwargs["job_id"]: c.body for c in api.client.named("update_job")}
    jobs = jobs_by_name(api)
    redeploy = bodies[jobs["cml-monitor redeploy"].id]
    assert redeploy == {"timeout": "7200", "parent_id": ""}  # Job.timeout is an int64: a string
    accuracy = bodies[jobs["cml-monitor compute_accuracy"].id]
    assert isinstance(accuracy["environment"], str)  # environment is a JSON string on update
    assert json.loads(accuracy["environment"])["LOG_FORMAT"] == "json" and accuracy["cpu"] == 2.0
    assert writes(api) == ["update_job"] * 3
    assert jobs["cml-monitor redeploy"].type == "manual"
    assert {c.action for c in graph.plan(api, cfg)} == {"unchanged"}


def test_jobs_it_does_not_manage_are_never_touched(workspace):
    ws = workspace("a")
    api, cfg = api_for(ws), config()
    runtime = api.resolve_runtime(None)
    theirs = ws.client().create_job(
        {
            "name": "nightly report",
            "script": "report.py",
            "runtime_identifier": runtime,
            "environment": {"OWNER": "bi-team"},
        },
        ws.project_id,
    )
    graph.apply(api, config(lambda d: d["jobs"]["graph"][0].update(cpu=3)))
    graph.apply(api, cfg)
    assert ws.client().get_job(ws.project_id, theirs.id) == theirs
    assert all(c.kwargs.get("job_id") != theirs.id for c in api.client.calls)


def test_a_job_of_the_same_name_not_managed_by_us_is_refused_before_any_change(workspace):
    ws = workspace("a")
    api, cfg = api_for(ws), config()
    runtime = api.resolve_runtime(None)
    ws.client().create_job(
        {"name": "cml-monitor compute_accuracy", "script": "mine.py", "runtime_identifier": runtime}, ws.project_id
    )
    with pytest.raises(
        ConfigError,
        match=r"job 'cml-monitor compute_accuracy' exists but is not managed by "
        r"cml-monitor \(no CML_MONITOR_MANAGED in its environment\)",
    ):
        graph.apply(api, cfg)
    assert writes(api) == [] and len(api.jobs()) == 1


def spec(name, parent=None, schedule=None):
    return JobSpec(name=name, script=f"jobs/{name}.py", parent=parent, schedule=schedule)


@pytest.mark.parametrize(
    "jobs, problem",
    [
        ([spec("a", "c"), spec("b", "a"), spec("c", "b")], "dependency cycle: a -> c -> b -> a"),
        ([spec("a", schedule="0 * * * *"), spec("b", "ghost")], "job 'b': parent 'ghost' is not in the graph"),
        (
            [spec("a", schedule="0 * * * *"), spec("b", "a", schedule="5 * * * *")],
            "job 'b': a dependent job cannot have a schedule",
        ),
        ([spec("a"), spec("b", "a"), spec("a")], "job 'a': duplicate name"),
    ],
)
def test_structural_problems_are_rejected_before_any_platform_call(workspace, jobs, problem):
    api = api_for(workspace("a"))
    for action in (graph.plan, graph.apply):
        with pytest.raises(ConfigError, match=problem):
            action(api, config(), jobs)
    assert api.client.calls == []


def test_round_trip_export_a_apply_to_an_empty_b_export_b_is_identical(workspace, tmp_path):
    a, b = api_for(workspace("a")), api_for(workspace("b"))
    graph.apply(a, config())
    exported = yaml.safe_dump(graph.export(a), sort_keys=False)
    (tmp_path / "graph.yaml").write_text(exported)
    loaded = graph.read_graph_file(tmp_path / "graph.yaml")
    assert [j.name for j in loaded.jobs] == names(config()) and loaded.timezone == "UTC"
    graph.apply(b, config(), loaded.jobs, runtime_identifier=loaded.runtime_identifier, timezone=loaded.timezone)
    assert yaml.safe_dump(graph.export(b), sort_keys=False) == exported
    assert {c.action for c in graph.apply(b, config(), loaded.jobs)} == {"unchanged"}
    entry = next(e for e in graph.export(b)["graph"] if e["name"] == "cml-monitor compute_accuracy")
    assert entry == {
        "name": "cml-monitor compute_accuracy",
        "script": "jobs/compute_accuracy.py",
        "parent": "cml-monitor simulate_traffic",
        "cpu": 1.0,
        "memory": 2.0,
        "timeout": 3600,
        "environment": {"LOG_FORMAT": "plain"},
    }


def test_the_command_line_round_trip(workspace, tmp_path, monkeypatch, capsys):
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text((REPO / "config/pipeline.yaml").read_text())
    common = ["--config", str(config_file), "--project-root", str(tmp_path)]
    enter_workspace(monkeypatch, workspace("a"))
    assert cli.main(["graph", "apply", *common]) == 0
    assert cli.main(["graph", "export", "--out", str(tmp_path / "a.yaml"), *common]) == 0
    enter_workspace(monkeypatch, workspace("b"))
    assert cli.main(["graph", "plan", "--graph-file", str(tmp_path / "a.yaml"), *common]) == 0
    assert cli.main(["graph", "apply", "--graph-file", str(tmp_path / "a.yaml"), *common]) == 0
    assert cli.main(["graph", "export", "--out", str(tmp_path / "b.yaml"), *common]) == 0
    assert (tmp_path / "b.yaml").read_text() == (tmp_path / "a.yaml").read_text()
    out = capsys.readouterr().out
    assert out.count("create    cml-monitor simulate_traffic") == 3  # apply in A; plan and apply in B


def test_a_minimal_config_without_jobs_graph_plans_the_standard_chain(workspace, tmp_path, monkeypatch, capsys):
    """What a new user writes: the model and the policies, no ``jobs:`` at all."""
    config_file = tmp_path / "pipeline.yaml"
    config_file.write_text(MINIMAL)
    ws = workspace("a")
    enter_workspace(monkeypatch, ws)
    assert cli.main(["graph", "plan", "--config", str(config_file), "--project-root", str(tmp_path)]) == 0
    planned = [line.split("  (")[0] for line in capsys.readouterr().out.splitlines() if line.startswith("create ")]
    assert planned == [
        "create    cml-monitor simulate_traffic",
        "create    cml-monitor compute_accuracy",
        "create    cml-monitor evaluate_thresholds",
        "create    cml-monitor redeploy",
        "create    application bike-demand dashboard",
    ]
    api = api_for(ws)
    chain = [(c.name, c.changes["parent"], c.changes["schedule"]) for c in graph.plan(api, load_config(config_file))]
    assert chain == [
        ("cml-monitor simulate_traffic", None, "0 * * * *"),
        ("cml-monitor compute_accuracy", "cml-monitor simulate_traffic", ""),
        ("cml-monitor evaluate_thresholds", "cml-monitor compute_accuracy", ""),
        ("cml-monitor redeploy", "cml-monitor evaluate_thresholds", ""),
    ]
    assert api.jobs() == []  # plan changes nothing


def test_secrets_never_appear_in_export_plan_lines_or_amp_output(workspace, caplog):
    ws = workspace("a")
    api = api_for(ws)
    graph.apply(api, config())
    job = jobs_by_name(api)["cml-monitor compute_accuracy"]
    assert job.environment["API_KEY"] == SECRET  # the job itself has it
    exported = yaml.safe_dump(graph.export(api))
    amp = yaml.safe_dump(amp_metadata(config()))
    assert SECRET not in exported and "API_KEY" not in exported
    assert SECRET not in amp
    assert "variable=API_KEY" in caplog.text and SECRET not in caplog.text
    changed = config(lambda d: d["jobs"]["graph"][1]["environment"].update(API_KEY="rotated-value"))
    (line,) = [c.line() for c in graph.plan(api, changed) if c.action == "update"]
    assert "'API_KEY': '***'" in line and "rotated-value" not in line and SECRET not in line


def test_applying_an_export_keeps_secrets_already_on_the_job(workspace):
    api = api_for(workspace("a"))
    graph.apply(api, config())
    exported = graph.export(api)
    jobs = [JobSpec(**e) for e in exported["graph"]]
    assert {c.action for c in graph.plan(api, config(), jobs)} == {"unchanged"}
    graph.apply(api, config(), [j.model_copy(update={"cpu": 2.0}) for j in jobs])
    env = jobs_by_name(api)["cml-monitor compute_accuracy"].environment
    assert env["API_KEY"] == SECRET and env["LOG_FORMAT"] == "plain"


def test_amp_metadata_creates_every_job_with_the_marker_and_asks_for_secrets(tmp_path):
    out = tmp_path / ".project-metadata.yaml"
    config_file = tmp_path / "pipeline.yaml"
    data = yaml.safe_load((REPO / "config/pipeline.yaml").read_text())
    data["jobs"]["graph"][1]["environment"] = {"LOG_FORMAT": "plain", "API_KEY": SECRET}
    config_file.write_text(yaml.safe_dump(data))
    assert (
        cli.main(["graph", "amp", "--config", str(config_file), "--project-root", str(tmp_path), "--out", str(out)])
        == 0
    )
    amp = yaml.safe_load(out.read_text())
    assert {"name", "description", "author", "specification_version", "prototype_version"} <= set(amp)
    assert amp["feature_dependencies"] == ["model_metrics"]
    jobs = [t for t in amp["tasks"] if t["type"] == "create_job"]
    assert [t["name"] for t in jobs] == [j["name"] for j in data["jobs"]["graph"]]
    assert all(t["environment"][graph.MANAGED_ENV] == "true" for t in jobs)
    assert jobs[1]["environment"] == {
        "LOG_FORMAT": "plain",
        "CML_MONITOR_CONFIG": "pipeline.yaml",
        graph.MANAGED_ENV: "true",
    }
    assert amp["environment_variables"]["CML_MONITOR_CONFIG"]["default"] == "pipeline.yaml"
    assert amp["environment_variables"]["API_KEY"]["required"] is True
    assert amp["environment_variables"]["API_KEY"]["default"] == "" and SECRET not in out.read_text()
    assert [t["type"] for t in amp["tasks"]][-1] == "run_session"  # wires parents and the schedule last
    scripts = [t["script"] for t in amp["tasks"] if "script" in t]
    assert all((REPO / s).is_file() for s in scripts if s != "scripts/install.py"), scripts
