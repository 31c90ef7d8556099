"""The four jobs as CML runs them, and the ``jobs.trigger: api`` redeploy path, on a local workspace.

CML's Runtime job wrapper runs a script without ``__file__``, adds ``-f <connection file>`` to
its arguments, counts any ``SystemExit`` (even 0) as a failure and starts it in the project
root. ``python -m localcml.jobs.engine`` does the same.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from localcml.environment import process_env
from localcml.workspace import LocalWorkspace
from monitoring.app import graph
from monitoring.app.wiring import build_context
from monitoring.config.pipeline import PipelineConfig, load_config
from monitoring.workflows.bootstrap import bootstrap
from monitoring.workflows.context import Context
from tests.cmlclient.support import enter_workspace, short_sleep
from tests.project import REPO, make_project

HEAVY_FIXTURES = ("project",)  # a started workspace with the pipeline bootstrapped (tests/conftest.py)

#: A whole hour of simulated time, so cycles and windows line up.
T0 = 1_790_000_000_000 - 1_790_000_000_000 % 3_600_000
CHAIN = ["simulate_traffic", "compute_accuracy", "evaluate_thresholds", "redeploy"]
HOUR = 3_600_000


@dataclass
class Project:
    root: Path
    cfg: PipelineConfig
    ws: LocalWorkspace
    ctx: Context

    def job_id(self, script: str) -> str:
        name = next(s.name for s in self.cfg.jobs.graph if s.script == f"jobs/{script}.py")
        return next(j.id for j in self.ctx.platform.api.jobs() if j.name == name)

    def engine(self, script: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
        """Run jobs/<script>.py under the engine wrapper, as a CML job run would (in ``cwd``)."""
        env = process_env(self.ws.engine_env(), {"CDSW_ENGINE_ID": f"test{script}"})
        path = f"jobs/{script}.py" if cwd is None else str(self.root / "jobs" / f"{script}.py")
        return subprocess.run(
            [sys.executable, "-m", "localcml.jobs.engine", path],
            cwd=cwd or self.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=300,
        )

    def wait_run(self, job_id: str, run_id: str, timeout: float = 180.0):
        deadline = time.monotonic() + timeout
        while (run := self.ctx.platform.api.get_job_run(job_id, run_id)) and not run.finished:
            assert time.monotonic() < deadline, f"run {run_id} did not finish"
            time.sleep(0.1)
        return run

    def log(self, run_id: str) -> str:
        return (self.ws.workspace_dir / "runs" / f"{run_id}.log").read_text()


def api_trigger_graph() -> list[dict]:
    jobs = yaml.safe_load((REPO / "config/pipeline.yaml").read_text())["jobs"]["graph"]
    for job in jobs:
        if job["script"] == "jobs/redeploy.py":
            job.pop("parent")  # started by evaluate_thresholds through the API on a breach
    return jobs


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("cml-project")
    cfg = load_config(make_project(root, {"jobs": {"trigger": "api", "graph": api_trigger_graph()}}))
    ws = LocalWorkspace(root / cfg.platform.local.workspace_dir, root, health_timeout=60).start()
    with pytest.MonkeyPatch.context() as patch:
        enter_workspace(patch, ws)
        ws.set_now(T0 + 60_000)
        ctx = build_context(cfg, root, clock=ws.clock, sleep=short_sleep)
        bootstrap(ctx)
        graph.apply(ctx.platform.api, cfg)
        yield Project(root, cfg, ws, ctx)
    ws.stop()


@pytest.mark.parametrize("script", sorted(p.stem for p in (REPO / "jobs").glob("*.py")))
def test_job_scripts_do_not_use___file___and_never_exit_zero(script):
    source = (REPO / "jobs" / f"{script}.py").read_text()
    tree = ast.parse(source)
    assert not [n for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id == "__file__"]
    exits = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "exit"
    ]
    code_checks = [n for n in ast.walk(tree) if isinstance(n, ast.If) and isinstance(n.test, ast.Name)]
    guarded = [c for c in exits if any(c in list(ast.walk(n)) for n in code_checks)]
    assert exits and guarded == exits  # sys.exit only inside `if exit_code:`: success is a normal return


def test_each_job_succeeds_under_the_cml_engine_wrapper_in_chain_order(project):
    for script in CHAIN:
        done = project.engine(script)
        lines = [ln for ln in done.stdout.splitlines() if ln.strip()]
        assert done.returncode == 0, done.stdout[-3000:]
        assert f"VERDICT job={script} " in lines[-1], lines[-1]
        assert "SystemExit" not in done.stdout
    # trigger "api": a decision without a breach starts nothing, and no chain links to redeploy
    assert project.ctx.store.latest_decision(project.cfg.model.name).action != "redeploy"
    assert project.ctx.platform.api.job_runs(project.job_id("redeploy")) == []


def test_jobs_read_the_config_relative_to_the_project_root_they_start_in(project, tmp_path):
    done = project.engine("evaluate_thresholds", cwd=tmp_path)
    assert done.returncode == 2
    assert f"{tmp_path / 'config/pipeline.yaml'}: cannot read the config file" in done.stdout
    verdict = [ln for ln in done.stdout.splitlines() if "VERDICT " in ln][-1]  # the engine adds a line after it
    assert "VERDICT job=evaluate_thresholds status=failed" in verdict and "exit_code=2" in verdict


def test_api_trigger_a_breach_decision_starts_the_redeploy_job_through_the_api(project):
    api, store, cfg = project.ctx.platform.api, project.ctx.store, project.cfg
    redeploy_job = project.job_id("redeploy")
    job = next(j for j in api.jobs() if j.id == redeploy_job)
    assert not job.parent_id and job.type == "manual"
    live = api.live_deployment(api.find_model(cfg.model.name))
    now = project.ws.clock.now_ms()
    start = now - now % HOUR - HOUR
    store.upsert_windows(
        [
            {
                "deployment_crn": live.crn,
                "start_ms": start,
                "end_ms": start + HOUR,
                "predictions": 250,
                "labelled": 240,
                "accuracy": 0.55,
                "precision": 0.5,
                "recall": 0.5,
                "f1": 0.5,
                "confusion": {"tp": 60, "fp": 54, "tn": 72, "fn": 54},
            }
        ]
    )
    evaluate = project.job_id("evaluate_thresholds")
    run = project.wait_run(evaluate, api.start_job_run(evaluate).id)
    assert run.status == "ENGINE_SUCCEEDED", project.log(run.id)[-3000:]
    decision = store.latest_decision(cfg.model.name)
    assert decision.action == "redeploy"
    (started,) = api.job_runs(redeploy_job)
    verdict = project.log(run.id).strip().splitlines()[-1]
    assert f"redeploy_run={started.id}" in verdict and f"decision={decision.id}" in verdict
    assert started.environment == {"CML_MONITOR_DECISION": decision.id}
    finished = project.wait_run(redeploy_job, started.id)
    assert f"acting on decision decision={decision.id}" in project.log(finished.id)
    # the decision is consumed once: (nothing was served to retrain on here, so the run failed
    # with a data error and the champion keeps serving)
    assert store.decision(decision.id).consumed_by is not None
    assert api.live_deployment(api.find_model(cfg.model.name)).id == live.id
    assert decision.values["labelled"] == 240 and len(api.job_runs(redeploy_job)) == 1
