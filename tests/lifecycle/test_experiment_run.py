"""Trainings as MLflow runs (a real MLflow store), registered versions, secrets kept out, the server down."""

from __future__ import annotations

import socket

import mlflow
import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from monitoring.core.errors import PlatformError
from monitoring.core.logs import register_secret
from monitoring.lifecycle.experiment_run import CONFIG_TAG, DECISION_TAG, JOB_RUN_TAG, log_training, register
from tests.lifecycle.conftest import MLFLOW_MARKS

pytestmark = MLFLOW_MARKS


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    yield mlflow.MlflowClient(uri)
    mlflow.set_tracking_uri(None)


def _fitted(seed: int = 3):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["a", "b", "c"])
    return LogisticRegression().fit(frame, (frame.a > 0).astype(int)), frame


def test_a_retrain_is_a_run_with_params_metrics_tags_and_a_registered_version(tracking):
    register_secret("s3cr3t-value-123")
    estimator, frame = _fitted()
    record = log_training(
        "telco",
        "retrain",
        estimator,
        frame.head(3),
        params={"strategy": "window", "rows": 80, "api_key": "abc", "note": "has s3cr3t-value-123"},
        metrics={"challenger_accuracy": 0.9, "champion_accuracy": 0.8, "gate_low": None},
        decision_id="d-7",
        job_run_id="run-1",
        config_digest="cfg-abc",
    )
    run = tracking.get_run(record.run_id)
    assert tracking.get_experiment(record.experiment_id).name == "telco"
    assert run.data.params == {"strategy": "window", "rows": "80"}  # the secrets are not logged
    assert run.data.metrics == {"challenger_accuracy": 0.9, "champion_accuracy": 0.8}
    assert {run.data.tags[k] for k in (DECISION_TAG, JOB_RUN_TAG, CONFIG_TAG)} == {"d-7", "run-1", "cfg-abc"}
    assert run.info.status == "FINISHED"
    model = mlflow.pyfunc.load_model(record.model_uri)
    assert model.metadata.signature is not None and model.metadata.saved_input_example_info
    first = register(record, "telco", alias="champion")
    second = register(record, "telco", alias="champion")
    assert (first.version, second.version) == ("1", "2")
    assert str(tracking.get_model_version_by_alias("telco", "champion").version) == "2"


def test_tracking_server_down_fails_the_retrain_cleanly_and_registers_nothing(tmp_path, monkeypatch):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
    estimator, frame = _fitted()
    try:
        with pytest.raises(PlatformError, match="nothing was registered"):
            log_training(
                "telco",
                "retrain",
                estimator,
                frame.head(2),
                params={},
                metrics={},
                decision_id="d",
                job_run_id=None,
                config_digest="c",
            )
    finally:
        mlflow.set_tracking_uri(None)


def test_a_local_store_keeps_the_models_next_to_it_not_in_the_working_directory(tmp_path, monkeypatch):
    cwd = tmp_path / "checkout"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # MLflow's default artifact root is ./mlruns: the stray folder in the checkout
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    (tmp_path / "store").mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    estimator, frame = _fitted()
    try:
        record = log_training(
            "housing",
            "bootstrap",
            estimator,
            frame.head(2),
            params={},
            metrics={},
            decision_id=None,
            job_run_id=None,
            config_digest="c",
        )
        assert list(cwd.iterdir()) == []
        assert mlflow.pyfunc.load_model(record.model_uri) is not None
        assert (tmp_path / "store" / "mlflow-artifacts").is_dir()
    finally:
        mlflow.set_tracking_uri(None)
