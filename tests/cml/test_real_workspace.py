"""The four jobs against a real CML workspace, with a throwaway model and job names, cleaned up after.

Run inside a CML session of a project that has this repository's files, after
``pip install -e '.[test]'``:  ``python -m pytest -m cml tests/cml -q``. It creates a model
``cml-monitor-test-<id>`` (build + deployment: several minutes on CML), four jobs named
``cml-monitor-test-<id> <job>``, runs the chain once through job dependencies, then deletes the
jobs, stops the deployment, deletes the model and removes its config and state files.
"""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import pytest
import yaml

from monitoring.app import graph
from monitoring.app.wiring import build_context
from monitoring.config.pipeline import load_config
from monitoring.core.errors import MonitoringError
from monitoring.workflows.bootstrap import bootstrap
from monitoring.workflows.context import Context
from tests.cml.conftest import cml_unavailable_reason

REASON = cml_unavailable_reason()
pytestmark = [pytest.mark.cml, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

REPO = Path(__file__).resolve().parents[2]
CHAIN_TIMEOUT_S = 45 * 60
POLL_S = 10
#: The head job needs a schedule (graph rules); the test starts the chain itself, so a yearly one.
RARELY = "0 0 1 1 *"


def throwaway_config(tag: str) -> dict:
    """The repo's config with a throwaway model, state and job names; no schedule (we start the head)."""
    data = yaml.safe_load((REPO / "config/pipeline.yaml").read_text())
    config_rel = f"var/{tag}/pipeline.yaml"
    data["model"]["name"] = tag
    data["platform"]["kind"] = "cml"
    data["scenario"].update(rows_per_cycle=50, training_rows=1000, concurrency=2)
    data["state"] = {"url": f"sqlite:///var/{tag}/state.db", "artifacts_dir": f"var/{tag}/models"}
    data["deployment"].update(build_timeout="30m", deploy_timeout="30m", poll_interval="15s")
    names = {j["name"]: f"{tag} {j['script'].rsplit('/', 1)[-1].removesuffix('.py')}" for j in data["jobs"]["graph"]}
    for job in data["jobs"]["graph"]:
        job["name"] = names[job["name"]]
        job["parent"] = names.get(job.get("parent"))
        if job.get("schedule"):
            job["schedule"] = RARELY
        job["arguments"] = f"--config {config_rel}"
        job["timeout"] = 1800
    return data


@pytest.fixture(scope="module")
def real():
    tag = f"cml-monitor-test-{uuid.uuid4().hex[:8]}"
    folder = REPO / "var" / tag
    folder.mkdir(parents=True)
    config_path = folder / "pipeline.yaml"
    config_path.write_text(yaml.safe_dump(throwaway_config(tag), sort_keys=False))
    cfg = load_config(config_path)
    ctx = build_context(cfg, REPO)
    try:
        yield ctx
    finally:
        cleanup(ctx, tag)
        shutil.rmtree(folder, ignore_errors=True)


def cleanup(ctx: Context, tag: str) -> None:
    """Delete the throwaway jobs, stop its deployments, delete the model; report what could not be."""
    api, client, left = ctx.platform.api, ctx.platform.api.client, []
    for job in api.jobs():
        if job.name.startswith(f"{tag} "):
            try:
                client.delete_job(project_id=api.project_id, job_id=job.id)
            except Exception as exc:  # noqa: BLE001 - clean up as much as possible, then report
                left.append(f"job {job.name}: {exc}")
    model = api.find_model(tag)
    if model is not None:
        for build in api.builds(model):
            for dep in api.deployments(model, build.id):
                if dep.status not in ("stopped", "failed"):
                    api.stop_deployment(model, dep)
        try:
            client.delete_model(project_id=api.project_id, model_id=model.id)
        except Exception as exc:  # noqa: BLE001
            left.append(f"model {tag}: {exc} (delete it in Models)")
    assert not left, "clean up by hand: " + "; ".join(left)


def newest_run(ctx: Context, job_id: str, after: set[str]):
    runs = [r for r in ctx.platform.api.job_runs(job_id) if r.id not in after]
    return runs[0] if runs else None


def test_bootstrap_graph_and_one_pass_of_the_chain_on_real_cml(real):
    ctx = real
    outcome = bootstrap(ctx)
    assert outcome.status == "deployed", outcome.summary
    model = ctx.platform.api.find_model(ctx.cfg.model.name)
    live = ctx.platform.api.live_deployment(model)
    assert live is not None and live.crn and live.status == "deployed"
    assert {c.action for c in graph.apply(ctx.platform.api, ctx.cfg)} == {"create"}
    assert {c.action for c in graph.plan(ctx.platform.api, ctx.cfg)} == {"unchanged"}
    ids = {j.name: j.id for j in ctx.platform.api.jobs()}
    chain = [ids[s.name] for s in graph.ordered(ctx.cfg.jobs.graph)]
    ctx.platform.api.start_job_run(chain[0])
    deadline = time.monotonic() + CHAIN_TIMEOUT_S
    for job_id in chain:  # dependents start only when their parent succeeded
        while (run := newest_run(ctx, job_id, set())) is None or not run.finished:
            assert time.monotonic() < deadline, f"job {job_id} did not finish within {CHAIN_TIMEOUT_S} s"
            time.sleep(POLL_S)
        assert run.succeeded, f"job {job_id} run {run.id}: see Jobs > History"
    decision = ctx.store.latest_decision(ctx.cfg.model.name)
    assert decision is not None, "evaluate_thresholds recorded no decision"


def test_a_second_bootstrap_changes_nothing(real):
    try:
        outcome = bootstrap(real)
    except MonitoringError as exc:
        pytest.fail(f"bootstrap on a serving model failed: {exc}")
    assert outcome.status == "no_action"
