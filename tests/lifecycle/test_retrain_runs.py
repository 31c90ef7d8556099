"""Bootstrap and every retrain are MLflow runs in the model's experiment, on the local workspace's real server."""

from __future__ import annotations

import pytest

from monitoring.core.errors import EXIT_OK, EXIT_PLATFORM
from monitoring.lifecycle.experiment_run import CONFIG_TAG, DECISION_TAG, JOB_RUN_TAG, KIND_TAG
from monitoring.lifecycle.switch import config_digest
from monitoring.workflows.bootstrap import bootstrap
from monitoring.workflows.training_runs import ARTIFACT_TAG, VERSION_TAG
from tests.lifecycle.conftest import MLFLOW_MARKS, client

pytestmark = MLFLOW_MARKS


def _runs(rig):
    mlf = client()
    experiment = mlf.get_experiment_by_name(rig.cfg.model.name)
    return [] if experiment is None else mlf.search_runs([experiment.experiment_id], order_by=["start_time ASC"])


def test_a_retrain_is_a_run_with_its_strategy_window_metrics_and_the_decision(rig):
    code, verdict = rig.job("redeploy")
    assert code == EXIT_OK and verdict["status"] == "deployed", rig.last_log[-3000:]
    (run,) = _runs(rig)
    assert verdict["experiment_run"] == run.info.run_id and run.info.status == "FINISHED"
    params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
    assert params["strategy"] == "recent" and params["trainer"] == "builtin"
    assert int(params["rows"]) == int(verdict["training_rows"])
    assert int(params["window_start_ms"]) < int(params["window_end_ms"])
    assert params["champion_version"] == "v1" and params["metric"] == "accuracy"
    assert metrics["challenger_accuracy"] == pytest.approx(float(verdict["challenger_value"]), abs=1e-4)
    assert metrics["champion_accuracy"] == pytest.approx(float(verdict["champion_value"]), abs=1e-4)
    assert tags[KIND_TAG] == "challenger" and tags[DECISION_TAG] == rig.template_decision
    assert tags[JOB_RUN_TAG] == rig.ctx.store.decision(rig.template_decision).consumed_by and tags[
        CONFIG_TAG
    ] == config_digest(rig.cfg)
    assert tags[VERSION_TAG] == verdict["version"] == "v2"
    assert tags[ARTIFACT_TAG].endswith("/v2")
    assert not (rig.root / "mlruns").exists() and not (rig.root / "mlflow.db").exists()


def test_bootstrap_is_a_run_too(rig):
    outcome = bootstrap(rig.ctx, force=True)
    assert outcome.status == "deployed"
    (run,) = _runs(rig)
    assert run.data.tags[KIND_TAG] == "bootstrap" and run.data.tags[VERSION_TAG] == outcome.fields["version"]
    assert "holdout_accuracy" in run.data.metrics and "champion_accuracy" not in run.data.metrics


def test_the_tracking_server_down_fails_the_retrain_cleanly_and_nothing_is_saved_or_deployed(rig):
    before, builds = rig.live(), len(rig.builds())
    rig.ws.inject("tracking=503 always")
    code, verdict = rig.job("redeploy")
    assert code == EXIT_PLATFORM and verdict["status"] == "failed", rig.last_log[-3000:]
    assert "nothing was registered" in verdict["summary"] and "tracking_errors: continue" in verdict["summary"]
    assert rig.live().id == before.id and len(rig.builds()) == builds
    assert rig.ctx.store.decision(rig.template_decision).outcome == "failed"
    assert not (rig.ctx.artifacts_dir / rig.cfg.model.name / "v2").exists()
    rig.ws.faults.clear()
    assert all(r.info.status != "FINISHED" for r in _runs(rig))  # a started run is left FAILED, never finished


def test_tracking_errors_continue_deploys_without_a_run(rig):
    rig.reconfigure(lifecycle={"experiments": "auto", "tracking_errors": "continue"})
    rig.ws.inject("tracking=503 always")
    code, verdict = rig.job("redeploy")
    assert code == EXIT_OK and verdict["status"] == "deployed", rig.last_log[-3000:]
    assert verdict["experiment_run"] == "not logged" and verdict["version"] == "v2"
    assert "training not logged to MLflow, going on" in rig.last_log
