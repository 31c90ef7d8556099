"""A workspace started over what a dead one left in W: runs, builds and a second workspace of the same directory.

The dead workspace's state is written as a crash leaves it (a crash at the right moment is the
chaos suite's business, in tests/chaos); here each kind of leftover is set up exactly.
"""

from __future__ import annotations

import pytest

from cmlbase.clock import WarpClock
from localcml.core.dirlock import WorkspaceBusy
from localcml.core.state import ApiState
from localcml.workspace import LocalWorkspace
from tests.local.support import wait_build, wait_run


def _left_behind(workspace_dir, kind, ident, **fields):
    """Rewrite an object of a stopped workspace as a daemon killed at that moment would have left it."""
    state = ApiState(workspace_dir, WarpClock(workspace_dir / "clock.json"))
    try:
        state.update(kind, ident, lambda obj: obj.update(fields))
    finally:
        state.close()


@pytest.fixture
def finished_runs(tmp_path, project_root):
    """Three runs of three jobs that ran to their end in a workspace that then stopped: (W, job ids, run ids)."""
    workspace_dir = tmp_path / "w"
    with LocalWorkspace(workspace_dir, project_root) as ws:
        api = ws.client()
        runtime = api.list_runtimes().runtimes[0].image_identifier
        jobs, runs = [], []
        for name in ("never_started", "lost", "stopping"):
            job = api.create_job(
                {"name": name, "script": "scripts/ok.py", "runtime_identifier": runtime}, ws.project_id
            )
            jobs.append(job.id)
            runs.append(wait_run(api, ws.project_id, job.id, api.create_job_run({}, ws.project_id, job.id).id).id)
    return workspace_dir, jobs, runs


def test_runs_a_dead_daemon_left_active_are_started_failed_or_stopped(finished_runs, project_root):
    workspace_dir, jobs, runs = finished_runs
    never_started, lost, stopping = runs
    for leftover in (f"{never_started}.log", f"{never_started}.exit", f"{lost}.exit"):
        (workspace_dir / "runs" / leftover).unlink()
    _left_behind(workspace_dir, "run", never_started, status="ENGINE_SCHEDULING")
    _left_behind(workspace_dir, "run", lost, status="ENGINE_RUNNING")
    _left_behind(workspace_dir, "run", stopping, status="ENGINE_STOPPING")
    with LocalWorkspace(workspace_dir, project_root) as ws:
        api = ws.client()
        status = {run: wait_run(api, ws.project_id, job, run).status for job, run in zip(jobs, runs)}
    assert status == {never_started: "ENGINE_SUCCEEDED", lost: "ENGINE_FAILED", stopping: "ENGINE_STOPPED"}
    log = (workspace_dir / "runs" / f"{never_started}.log").read_text()
    assert "before this run's engine started; starting it" in log and "ok run finished" in log
    lost_log = (workspace_dir / "runs" / f"{lost}.log").read_text()
    assert "while no daemon watched it; the run is marked failed" in lost_log.splitlines()[-1]
    assert "being stopped" in (workspace_dir / "runs" / f"{stopping}.log").read_text()


def test_the_exit_record_of_an_engine_that_ended_alone_decides_its_run(finished_runs, project_root):
    workspace_dir, jobs, runs = finished_runs
    (workspace_dir / "runs" / f"{runs[1]}.exit").write_text('{"code": 4}')
    _left_behind(workspace_dir, "run", runs[1], status="ENGINE_RUNNING")
    with LocalWorkspace(workspace_dir, project_root) as ws:
        assert wait_run(ws.client(), ws.project_id, jobs[1], runs[1]).status == "ENGINE_FAILED"
    assert (
        "ended with exit code 4 while no daemon watched it" in (workspace_dir / "runs" / f"{runs[1]}.log").read_text()
    )


def test_a_build_without_its_snapshot_fails_and_a_half_copy_is_removed(tmp_path, project_root):
    workspace_dir = tmp_path / "w"
    with LocalWorkspace(workspace_dir, project_root) as ws:
        api = ws.client()
        model = api.create_model({"name": "m"}, ws.project_id)
        runtime = api.list_runtimes().runtimes[0].image_identifier
        body = {"file_path": "models/echo.py", "function_name": "predict", "runtime_identifier": runtime}
        build = wait_build(api, ws.project_id, model.id, api.create_model_build(body, ws.project_id, model.id).id)
    builds = workspace_dir / "builds"
    (builds / build.id).rename(builds / f".{build.id}.partial")  # killed while copying the project
    _left_behind(workspace_dir, "build", build.id, status="pending")
    with LocalWorkspace(workspace_dir, project_root) as ws:
        again = wait_build(ws.client(), ws.project_id, model.id, build.id)
    assert again.status == "build failed" and not (builds / f".{build.id}.partial").exists()
    assert "stopped before the snapshot was taken" in (builds / f"{build.id}.log").read_text()


def test_a_second_workspace_of_a_served_directory_is_refused(tmp_path, project_root):
    with LocalWorkspace(tmp_path / "w", project_root), pytest.raises(WorkspaceBusy, match="serves this directory"):
        LocalWorkspace(tmp_path / "w", project_root).start()
    LocalWorkspace(tmp_path / "w", project_root).start().stop()  # free again once it stopped
