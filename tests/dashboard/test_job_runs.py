"""Every job run is recorded in the state store with its VERDICT, for the dashboard's "last run of each job"."""

from __future__ import annotations

from monitoring.app.jobrun import run_job
from monitoring.core.errors import DataError
from monitoring.core.logs import REDACTOR
from monitoring.state.job_runs import job_runs, latest_job_runs
from monitoring.state.store import StateStore
from monitoring.workflows.context import Context, Outcome
from tests.dashboard.support import PLANTED, FixedClock, RunPlatform
from tests.project import make_project


def test_each_run_is_recorded_with_its_verdict_and_the_latest_per_job_is_found(tmp_path, monkeypatch):
    config = make_project(tmp_path)
    store = StateStore("sqlite:///var/state.db", base_dir=tmp_path)
    runs = iter(["run-a", "run-b", "run-c"])
    clock = FixedClock(1_000)

    def wiring(cfg, root):
        clock.now += 1_000
        return Context(cfg, RunPlatform(next(runs), clock), store, root)

    def healthy(ctx):
        return Outcome("ok", "13 windows computed", "none", {"windows": 13, "accuracy": 0.91})

    def broken(ctx):
        raise DataError(f"metrics record 7 is not JSON (key={PLANTED})")

    monkeypatch.setattr(REDACTOR, "secrets", set(REDACTOR.secrets))
    REDACTOR.add(PLANTED)
    argv = ["--config", str(config), "--project-root", str(tmp_path), "-f", "ignored"]
    assert run_job("compute_accuracy", healthy, argv, wiring=wiring) == 0
    assert run_job("evaluate_thresholds", healthy, argv, wiring=wiring) == 0
    assert run_job("compute_accuracy", broken, argv, wiring=wiring) == 4
    cfg_model = "telco-cell-tower-failure"
    latest = {r.job: r for r in latest_job_runs(store, cfg_model)}
    assert set(latest) == {"compute_accuracy", "evaluate_thresholds"}
    failed = latest["compute_accuracy"]
    assert (failed.run_id, failed.status, failed.exit_code, failed.finished_ms) == ("run-c", "failed", 4, 4_000)
    assert failed.summary == "metrics record 7 is not JSON (key=***)" and failed.fields == {"error": "DataError"}
    assert failed.action.startswith("check the data named above")
    ok = latest["evaluate_thresholds"]
    assert (ok.status, ok.exit_code, ok.fields, ok.summary) == (
        "ok",
        0,
        {"windows": 13, "accuracy": 0.91},
        "13 windows computed",
    )
    assert [r.run_id for r in job_runs(store, cfg_model, 0, 10_000)] == ["run-c", "run-b", "run-a"]
    assert latest_job_runs(store, "another model") == []


def test_a_store_without_the_table_reads_as_no_runs_and_a_config_error_records_nothing(tmp_path):
    store = StateStore("sqlite:///var/state.db", base_dir=tmp_path)
    assert latest_job_runs(store, "m") == [] and job_runs(store, "m", 0, 1) == []
    argv = ["--config", str(tmp_path / "missing.yaml"), "--project-root", str(tmp_path)]
    assert run_job("compute_accuracy", lambda ctx: Outcome("ok", "x"), argv) == 2  # no store reached: nothing to record
    assert latest_job_runs(store, "telco-cell-tower-failure") == []
