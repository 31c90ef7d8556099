"""Job runs as real subprocesses: statuses, CML's kernel-wrapper semantics, one active run, chains, timeouts."""

from __future__ import annotations

import json

import pytest
import requests

from localcml.client.api import ApiException
from tests.local.support import runs_of, wait_for, wait_run


def test_run_succeeds_with_status_timestamps_and_log(api, ws, new_job):
    job = new_job("ok")
    run = api.create_job_run({}, ws.project_id, job.id)
    assert run.status == "ENGINE_SCHEDULING" and run.job_id == job.id and run.environment == "{}"
    done = wait_run(api, ws.project_id, job.id, run.id)
    assert done.status == "ENGINE_SUCCEEDED"
    assert done.scheduling_at <= done.starting_at <= done.running_at <= done.finished_at
    log = (ws.workspace_dir / "runs" / f"{run.id}.log").read_text()
    assert "ok run finished" in log


def test_script_ending_with_sys_exit_0_is_a_failed_run(api, ws, new_job):
    job = new_job("exit0", "scripts/exit0.py")
    run = wait_run(api, ws.project_id, job.id, api.create_job_run({}, ws.project_id, job.id).id)
    assert run.status == "ENGINE_FAILED"
    assert "exiting with 0" in (ws.workspace_dir / "runs" / f"{run.id}.log").read_text()


def test_uncaught_exception_fails_and_traceback_is_logged(api, ws, new_job):
    job = new_job("fail", "scripts/fail.py")
    run = wait_run(api, ws.project_id, job.id, api.create_job_run({}, ws.project_id, job.id).id)
    assert run.status == "ENGINE_FAILED"
    assert "RuntimeError: boom" in (ws.workspace_dir / "runs" / f"{run.id}.log").read_text()


def test_engine_gets_f_argv_no_file_cml_env_and_own_credentials(api, ws, new_job, tmp_path, project_root):
    out = tmp_path / "probe.json"
    job = new_job("probe", "scripts/probe.py", arguments="--window 1h", environment={"FOO": "job", "BAR": "job"})
    run = api.create_job_run({"environment": {"PROBE_OUT": str(out), "BAR": "run"}}, ws.project_id, job.id)
    assert wait_run(api, ws.project_id, job.id, run.id).status == "ENGINE_SUCCEEDED"
    probe = json.loads(out.read_text())
    argv = probe["argv"]
    assert argv[0] == "scripts/probe.py" and argv[1] == "-f" and argv[2].endswith(".json")
    assert argv[3:] == ["--window", "1h"]
    assert probe["has_file"] is False and probe["name"] == "__main__"
    assert probe["cwd"] == str(project_root)
    env = probe["env"]
    assert env["CDSW_PROJECT_ID"] == ws.project_id and env["CDSW_API_URL"] == f"{ws.url}/api/v1"
    assert env["CDSW_DOMAIN"] == f"127.0.0.1:{ws.port}"
    assert env["CDSW_APIV2_KEY"] not in ("", ws.api_key)  # the engine's own key, not the user's
    assert env["CDSW_ENGINE_ID"] and env["CML_MONITOR_WORKSPACE"] == str(ws.workspace_dir)
    assert (env["FOO"], env["BAR"]) == ("job", "run")  # run environment adds to (and wins over) the job's
    assert probe["project_name"] == "cml-monitor"  # cmlapi.default_client() worked with the engine's credentials
    url = f"{ws.url}/api/v2/projects/{ws.project_id}"
    expired = requests.get(url, headers={"authorization": f"Bearer {env['CDSW_APIV2_KEY']}"}, timeout=10)
    assert expired.status_code == 401  # the engine's key died with the engine


def test_one_active_run_per_job(api, ws, new_job):
    job = new_job("block", "scripts/block.py")
    first = api.create_job_run({}, ws.project_id, job.id)
    with pytest.raises(ApiException) as err:
        api.create_job_run({}, ws.project_id, job.id)
    body = json.loads(err.value.body)
    assert err.value.status == 400 and body["code"] == 9 and "already has an active run" in body["message"]
    stopping = api.stop_job_run(ws.project_id, job.id, first.id)
    assert stopping.status in ("ENGINE_STOPPING", "ENGINE_STOPPED")
    assert wait_run(api, ws.project_id, job.id, first.id).status == "ENGINE_STOPPED"
    second = api.create_job_run({}, ws.project_id, job.id)  # allowed again once the first ended
    api.stop_job_run(ws.project_id, job.id, second.id)
    assert wait_run(api, ws.project_id, job.id, second.id).status == "ENGINE_STOPPED"
    with pytest.raises(ApiException) as err:
        api.stop_job_run(ws.project_id, job.id, second.id)
    assert err.value.status == 400


def test_timeout_kills_the_run(api, ws, new_job):
    job = new_job("slow", "scripts/block.py", timeout=1)
    run = wait_run(api, ws.project_id, job.id, api.create_job_run({}, ws.project_id, job.id).id)
    assert run.status == "ENGINE_TIMEDOUT"
    assert "timed out" in (ws.workspace_dir / "runs" / f"{run.id}.log").read_text()


def test_dependent_runs_after_parent_succeeds(api, ws, new_job, tmp_path):
    marks = tmp_path / "marks.txt"
    head = new_job("head", "scripts/mark.py", environment={"MARK_FILE": str(marks), "MARK": "head"})
    child = new_job(
        "child", "scripts/mark.py", parent_id=head.id, environment={"MARK_FILE": str(marks), "MARK": "child"}
    )
    run = api.create_job_run({}, ws.project_id, head.id)
    assert wait_run(api, ws.project_id, head.id, run.id).status == "ENGINE_SUCCEEDED"
    child_runs = wait_for(lambda: runs_of(api, ws.project_id, child.id), "the dependent's run")
    assert wait_run(api, ws.project_id, child.id, child_runs[0].id).status == "ENGINE_SUCCEEDED"
    assert marks.read_text().split() == ["head", "child"]


def test_chain_stops_where_a_job_fails(api, ws, new_job):
    first = new_job("first")
    middle = new_job("middle", "scripts/fail.py", parent_id=first.id)
    last = new_job("last", parent_id=middle.id)
    run = api.create_job_run({}, ws.project_id, first.id)
    assert wait_run(api, ws.project_id, first.id, run.id).status == "ENGINE_SUCCEEDED"
    middle_runs = wait_for(lambda: runs_of(api, ws.project_id, middle.id), "the middle job's run")
    assert wait_run(api, ws.project_id, middle.id, middle_runs[0].id).status == "ENGINE_FAILED"
    # the middle run is final: its supervisor has returned without starting dependents
    assert runs_of(api, ws.project_id, last.id) == []


def test_dependent_not_started_after_stop(api, ws, new_job):
    head = new_job("blocker", "scripts/block.py")
    child = new_job("after", parent_id=head.id)
    run = api.create_job_run({}, ws.project_id, head.id)
    wait_for(lambda: api.get_job_run(ws.project_id, head.id, run.id).status == "ENGINE_RUNNING", "running")
    api.stop_job_run(ws.project_id, head.id, run.id)
    assert wait_run(api, ws.project_id, head.id, run.id).status == "ENGINE_STOPPED"
    assert runs_of(api, ws.project_id, child.id) == []


def test_run_listing_filters_by_lower_case_status(api, ws, new_job):
    job = new_job("twice")
    for _ in range(2):
        wait_run(api, ws.project_id, job.id, api.create_job_run({}, ws.project_id, job.id).id)
    assert len(api.list_job_runs(ws.project_id, job.id, search_filter='{"status": "succeeded"}').job_runs) == 2
    assert api.list_job_runs(ws.project_id, job.id, search_filter='{"status": "failed"}').job_runs == []
    latest = api.list_job_runs(ws.project_id, job.id, sort="-created_at", page_size=1)
    assert len(latest.job_runs) == 1 and latest.next_page_token


def test_stop_of_workspace_stops_active_runs(tmp_path, project_root):
    from localcml.workspace import LocalWorkspace

    ws = LocalWorkspace(tmp_path / "w2", project_root).start()
    api = ws.client()
    runtime = api.list_runtimes().runtimes[0].image_identifier
    job = api.create_job({"name": "b", "script": "scripts/block.py", "runtime_identifier": runtime}, ws.project_id)
    run = api.create_job_run({}, ws.project_id, job.id)
    wait_for(lambda: api.get_job_run(ws.project_id, job.id, run.id).status == "ENGINE_RUNNING", "running")
    ws.stop()
    again = LocalWorkspace(tmp_path / "w2", project_root).start()
    try:
        assert again.client().get_job_run(again.project_id, job.id, run.id).status == "ENGINE_STOPPED"
        assert again.project_id == ws.project_id
    finally:
        again.stop()
