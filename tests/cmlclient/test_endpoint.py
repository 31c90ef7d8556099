"""The model endpoint client against real replicas: 429 model.busy is retried; over 5 MB is never sent."""

from __future__ import annotations

import logging
import os
import threading

import pytest
import requests

from monitoring.cmlclient.api import CmlApi
from monitoring.cmlclient.endpoint import MAX_BODY_BYTES, ModelEndpoint
from monitoring.cmlclient.retry import RetryPolicy
from monitoring.cmlclient.waits import wait_for_build, wait_for_deployment
from monitoring.core.errors import DataError, TransientPlatformError
from tests.cmlclient.support import fast_policy, platform_for, started_workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """One workspace for the module: its tests only call the model it serves, and leave the replica free."""
    with started_workspace(tmp_path_factory.mktemp("endpoint") / "project") as workspace:
        yield workspace


@pytest.fixture(scope="module")
def scored(ws):
    """A model serving models/scored.py with one single-threaded replica (auth on)."""
    api = CmlApi(ws.client(), ws.project_id, fast_policy())
    model = api.create_model("scored", "test", auth_enabled=True)
    build_id = api.create_build(model, "models/scored.py", "predict", "c", None)
    platform = platform_for(ws, api)
    wait_for_build(platform, model, build_id, 60, 0.05)
    wait_for_deployment(platform, model, api.create_deployment(model, build_id, 1, 2, 1, {}), 60, 0.05)
    return model


@pytest.fixture
def busy(ws, scored, tmp_path):
    """Holds the only replica busy until ``release()``; yields that function."""
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    first: dict = {}
    body = {"accessKey": scored.access_key, "request": {"gate": str(gate)}}
    headers = {"Authorization": f"Bearer {ws.model_api_key}"}
    worker = threading.Thread(
        target=lambda: first.update(reply=requests.post(ws.model_url, json=body, headers=headers, timeout=60))
    )
    worker.start()
    writer = [os.open(gate, os.O_WRONLY)]  # returns once predict has opened the gate: the replica is busy

    def release() -> None:
        if writer:
            os.write(writer[0], b"go")
            os.close(writer.pop())

    yield release
    release()
    worker.join(60)
    assert first["reply"].status_code == 200


def endpoint(ws, model, sleep, attempts=4) -> ModelEndpoint:
    policy = RetryPolicy(attempts=attempts, initial_s=1.0, maximum_s=8.0, jitter_s=0.0, sleep=sleep)
    return ModelEndpoint(ws.model_url, model.access_key, ws.model_api_key, 30.0, policy)


def test_model_busy_429_is_retried_after_a_logged_backoff(ws, scored, busy, caplog):
    sleeps = []

    def sleep(seconds: float) -> None:  # the backoff "passes" and the other caller finishes
        sleeps.append(seconds)
        busy()

    caplog.set_level(logging.WARNING, logger="monitoring.cmlclient.retry")
    prediction, uuid = endpoint(ws, scored, sleep).predict({"x": 1})
    assert prediction == 1 and uuid and sleeps == [1.0]
    (line,) = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert "HTTP 429" in line and "stayed busy" in line and "attempt=1" in line


def test_model_busy_until_out_of_tries_is_a_transient_platform_error(ws, scored, busy):
    sleeps = []
    with pytest.raises(TransientPlatformError, match=r"call the model endpoint: HTTP 429: all replicas .* busy"):
        endpoint(ws, scored, sleeps.append, attempts=2).predict({"x": 1})
    assert sleeps == [1.0]


def test_a_request_over_5_mb_is_refused_before_it_is_sent(ws, scored):
    sleeps = []
    client = endpoint(ws, scored, sleeps.append)
    big = {"blob": "x" * MAX_BODY_BYTES}
    with pytest.raises(
        DataError,
        match=r"model request of \d+ bytes is over the model endpoint's limit of "
        r"5242880 bytes \(5 MB\); it was not sent",
    ):
        client.predict(big)
    assert sleeps == [] and getattr(client._local, "session", None) is None  # no connection was opened
    just_under = {"blob": "x" * (MAX_BODY_BYTES - len(client.encode({})) - 100)}
    assert len(client.encode(just_under)) <= MAX_BODY_BYTES
    assert client.predict(just_under)[0] == 1
