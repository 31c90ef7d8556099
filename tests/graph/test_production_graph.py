"""The graph in production: the config file travels with every job, any job set, alert emails on the jobs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from monitoring.app import cli, graph
from monitoring.app.amp import amp_metadata
from monitoring.config.graph_rules import GROUND_TRUTH_SCRIPT
from monitoring.config.pipeline import CONFIG_ENV, JobSpec, parse_config
from monitoring.core.errors import ConfigError
from tests.cmlclient.support import enter_workspace
from tests.graph.support import REPO, api_for, names, writes
from tests.integration.test_jobs_and_shim import wait_runs
from tests.project import make_project

ONCALL, TEAM = "oncall@example.com", "ml-team@example.com"


def base() -> dict:
    return yaml.safe_load((REPO / "config/pipeline.yaml").read_text())


def write_config(root: Path, rel: str, data: dict) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def for_model(tag: str) -> dict:
    """The shipped config for model ``model-<tag>``, its jobs named ``<tag> <script>``."""
    data = base()
    data["model"]["name"] = f"model-{tag}"
    renamed = {j["name"]: f"{tag} {j['script'].rsplit('/', 1)[-1].removesuffix('.py')}" for j in data["jobs"]["graph"]}
    for j in data["jobs"]["graph"]:
        j["name"] = renamed[j["name"]]
        if "parent" in j:
            j["parent"] = renamed[j["parent"]]
    return data


def production(**jobs) -> dict:
    """Ground truth at the head (daily), then compute, evaluate, redeploy; no simulate_traffic."""
    data = base()
    data["jobs"].update(jobs)
    data["jobs"]["graph"] = [
        {"name": "prod ground_truth", "script": GROUND_TRUTH_SCRIPT, "schedule": "0 6 * * *"},
        {"name": "prod compute_accuracy", "script": "jobs/compute_accuracy.py", "parent": "prod ground_truth"},
        {
            "name": "prod evaluate_thresholds",
            "script": "jobs/evaluate_thresholds.py",
            "parent": "prod compute_accuracy",
        },
        {"name": "prod redeploy", "script": "jobs/redeploy.py", "parent": "prod evaluate_thresholds", "memory": 4},
    ]
    data["ground_truth"] = {  # where the head job's labels come from
        "source": {"kind": "csv", "path": "crm/*.csv", "time_column": "closed_at"},
        "key": "customer_id",
    }
    return data


def graph_cli(action: str, root: Path, *extra: str) -> int:
    return cli.main(["graph", action, "--project-root", str(root), *extra])


# -- the config travels with the graph ------------------------------------------------------------
def test_apply_with_a_config_makes_every_job_read_it_and_plan_shows_it(workspace, monkeypatch, capsys):
    ws = workspace("a")
    root = ws.project_root
    prod = write_config(root, "config/prod.yaml", base())
    write_config(root, "config/pipeline.yaml", base())
    enter_workspace(monkeypatch, ws)
    assert graph_cli("plan", root, "--config", str(prod)) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("every job reads config/prod.yaml (CML_MONITOR_CONFIG in its environment")
    assert out[1:-1] == [f"create    {n}  (config='config/prod.yaml')" for n in names(parse_config(base()))]
    app = f"{parse_config(base()).model.name} dashboard"
    assert out[-1].startswith(f"create    application {app}  (subdomain=")  # the dashboard comes with the jobs
    assert graph_cli("apply", root, "--config", str(prod)) == 0
    api = api_for(ws)
    assert {j.environment[CONFIG_ENV] for j in api.jobs()} == {"config/prod.yaml"}
    (dashboard,) = api.applications()
    assert dashboard.environment[CONFIG_ENV] == "config/prod.yaml" and not dashboard.bypass_authentication
    capsys.readouterr()
    monkeypatch.chdir(root)  # a relative --config is relative to the working directory
    assert graph_cli("plan", root, "--config", "config/pipeline.yaml") == 0
    out = capsys.readouterr().out.splitlines()[1:]
    assert out[:-1] == [f"update    {n}  (config='config/pipeline.yaml')" for n in names(parse_config(base()))]
    assert out[-1].startswith(f"update    application {app}  (environment=")
    assert graph_cli("apply", root) == 0  # no --config: the project default, named explicitly
    assert {j.environment[CONFIG_ENV] for j in api.jobs()} == {"config/pipeline.yaml"}
    outside = write_config(root.parent, "elsewhere.yaml", base())
    assert graph_cli("plan", root, "--config", str(outside)) == 2
    assert "jobs read their config from the project, so put it there" in capsys.readouterr().err


def test_two_configs_for_two_models_in_one_project_each_run_reads_its_own_also_after_an_export(
    workspace, monkeypatch, tmp_path
):
    a, b = workspace("a"), workspace("b")
    roots = {}
    for ws in (a, b):
        roots[ws] = root = ws.project_root
        make_project(root)
        for tag in ("x", "y"):
            write_config(root, f"config/{tag}.yaml", for_model(tag))
    enter_workspace(monkeypatch, a)
    for tag in ("x", "y"):
        assert graph_cli("apply", roots[a], "--config", str(roots[a] / f"config/{tag}.yaml")) == 0
    assert graph_cli("export", roots[a], "--out", str(tmp_path / "graph.yaml")) == 0
    exported = yaml.safe_load((tmp_path / "graph.yaml").read_text())["graph"]
    assert {e["name"]: e["environment"][CONFIG_ENV] for e in exported}["y redeploy"] == "config/y.yaml"
    enter_workspace(monkeypatch, b)
    y_only = {"graph": [e for e in exported if e["name"].startswith("y ")]}
    (tmp_path / "y.yaml").write_text(yaml.safe_dump(y_only))
    # No --config: each job keeps the config the graph file names (the CLI's own is pipeline.yaml).
    assert graph_cli("apply", roots[b], "--graph-file", str(tmp_path / "y.yaml")) == 0
    runs = {}
    for ws, job in ((a, "x simulate_traffic"), (a, "y compute_accuracy"), (b, "y simulate_traffic")):
        api = api_for(ws)
        job_id = next(j.id for j in api.jobs() if j.name == job)
        runs[(ws, job)] = api.start_job_run(job_id).id, job_id
    for (ws, job), (run_id, job_id) in runs.items():
        (run,) = wait_runs(api_for(ws), job_id)
        log = (ws.workspace_dir / "runs" / f"{run_id}.log").read_text()
        model = f"model-{job[0]}"
        assert run.status == "ENGINE_FAILED", log[-2000:]  # no model was bootstrapped: a data error naming it
        verdict = [line for line in log.splitlines() if "VERDICT" in line][-1]
        assert f"model {model!r} does not exist in project" in verdict, (job, verdict)
        assert "telco-cell-tower-failure" not in log  # config/pipeline.yaml was never read


# -- any job set ------------------------------------------------------------------------------
def test_a_production_graph_is_planned_applied_exported_and_cloned(workspace, tmp_path):
    api, cfg = api_for(workspace("a")), parse_config(production())
    changes = graph.apply(api, cfg, config="config/prod.yaml")
    assert [c.name for c in changes] == names(cfg)
    jobs = {j.name: j for j in api.jobs()}
    head = jobs["prod ground_truth"]
    assert (head.script, head.schedule, head.type) == (GROUND_TRUTH_SCRIPT, "0 6 * * *", "cron")
    assert all(j.type == "dependent" and not j.schedule for n, j in jobs.items() if n != "prod ground_truth")
    assert not [j for j in jobs.values() if "simulate_traffic" in j.script]
    exported = graph.export(api)
    assert [e["name"] for e in exported["graph"]] == names(cfg)
    b = api_for(workspace("b"))
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(exported))
    graph.apply(b, cfg, graph.read_graph_file(tmp_path / "g.yaml").jobs)
    assert graph.export(b) == exported
    amp = amp_metadata(cfg, "config/prod.yaml")
    created = [t for t in amp["tasks"] if t["type"] == "create_job"]
    assert [(t["entity_label"], t["script"]) for t in created][0] == ("ground_truth", GROUND_TRUTH_SCRIPT)
    assert {t["environment"][CONFIG_ENV] for t in created} == {"config/prod.yaml"}


def test_a_broken_job_set_is_refused_before_any_call_naming_the_job(workspace, tmp_path):
    api, cfg = api_for(workspace("a")), parse_config(production())
    broken = [
        j.model_copy(update={"parent": None}) if j.name == "prod evaluate_thresholds" else j for j in cfg.jobs.graph
    ]
    with pytest.raises(ConfigError, match="jobs 'prod ground_truth', 'prod evaluate_thresholds' have no parent"):
        graph.plan(api, cfg, broken)
    assert api.client.calls == []


# -- alert emails -------------------------------------------------------------------------------
def raw_recipients(ws, job_id: str) -> list[dict]:
    job = ws.client().get_job(ws.project_id, job_id)
    return [r if isinstance(r, dict) else r.to_dict() for r in job.recipients]


def test_alert_emails_become_job_recipients_notified_on_failure_and_timeout(workspace):
    ws = workspace("a")
    api = api_for(ws)
    data = production(alert_emails=[ONCALL])
    data["jobs"]["graph"][2]["alert_emails"] = [TEAM, ONCALL]
    data["jobs"]["graph"][3]["alert_emails"] = []
    cfg = parse_config(data)
    lines = [c.line() for c in graph.plan(api, cfg)]
    assert lines[0] == f"create    prod ground_truth  (alert_emails=[{ONCALL!r}])"
    assert lines[3] == "create    prod redeploy"
    graph.apply(api, cfg)
    jobs = {j.name: j for j in api.jobs()}
    assert raw_recipients(ws, jobs["prod ground_truth"].id) == [
        {
            "email": ONCALL,
            "notify_on_failure": True,
            "notify_on_timeout": True,
            "notify_on_success": False,
            "notify_on_stop": False,
        }
    ]
    assert jobs["prod evaluate_thresholds"].recipients == {TEAM: ("failure", "timeout"), ONCALL: ("failure", "timeout")}
    assert jobs["prod redeploy"].recipients == {}
    api.client.calls.clear()
    assert {c.action for c in graph.apply(api, cfg)} == {"unchanged"} and writes(api) == []

    data["jobs"]["alert_emails"] = [TEAM]  # a new default changes only the jobs that use it
    changes = {c.name: c for c in graph.plan(api, parse_config(data))}
    assert {n: c.changes for n, c in changes.items() if c.action == "update"} == {
        "prod ground_truth": {"alert_emails": [TEAM]},
        "prod compute_accuracy": {"alert_emails": [TEAM]},
    }
    graph.apply(api, parse_config(data))
    bodies = [c.body for c in api.client.named("update_job")]
    assert bodies == [{"recipients": [recipient(TEAM)]}] * 2


def recipient(email: str) -> dict:
    return {
        "email": email,
        "notify_on_failure": True,
        "notify_on_timeout": True,
        "notify_on_success": False,
        "notify_on_stop": False,
    }


def test_recipients_changed_by_hand_are_shown_and_set_back_and_exported(workspace, tmp_path):
    ws = workspace("a")
    api, cfg = api_for(ws), parse_config(production(alert_emails=[ONCALL]))
    graph.apply(api, cfg)
    head = next(j for j in api.jobs() if j.name == "prod ground_truth")
    by_hand = [{"email": ONCALL, "notify_on_success": True}, {"email": TEAM, "notify_on_failure": True}]
    ws.client().update_job({"recipients": by_hand}, ws.project_id, head.id)
    (change,) = [c for c in graph.plan(api, cfg) if c.action == "update"]
    assert change.line() == "update    prod ground_truth  (alert_emails=['oncall@example.com'])"
    graph.apply(api, cfg)
    assert raw_recipients(ws, head.id) == [recipient(ONCALL)]
    exported = graph.export(api)
    assert {e["name"]: e.get("alert_emails") for e in exported["graph"]} == {n: [ONCALL] for n in names(cfg)}
    b = api_for(workspace("b"))
    graph.apply(b, parse_config(production()), [JobSpec(**e) for e in exported["graph"]])
    assert {j.name: j.recipients for j in b.jobs()} == {n: {ONCALL: ("failure", "timeout")} for n in names(cfg)}


def test_the_webhook_variable_is_a_secret_whatever_its_name(workspace):
    ws = workspace("a")
    data = production()
    data["alerts"] = {"webhook": {"url_env": "ONCALL_HOOK"}}
    data["jobs"]["graph"][2]["environment"] = {"ONCALL_HOOK": "https://hooks.example.com/T0/B0/planted-hook-path"}
    cfg = parse_config(data)
    api = api_for(ws)
    graph.apply(api, cfg)
    exported = json.dumps(graph.export(api, graph.secret_names(cfg)))
    amp = json.dumps(amp_metadata(cfg, "config/pipeline.yaml"))
    assert "planted-hook-path" not in exported and "planted-hook-path" not in amp
    assert json.loads(amp)  # still a document
    data["jobs"]["graph"][2]["environment"]["ONCALL_HOOK"] = "https://hooks.example.com/rotated-hook-path"
    (line,) = [c.line() for c in graph.plan(api, parse_config(data)) if c.action == "update"]
    assert "'ONCALL_HOOK': '***'" in line and "hook-path" not in line
