"""Retries at the platform edge: the config's limits, a log line before each wait, no real waiting,
and refusals (4xx other than 408/429) reported at once with the platform's own message."""

from __future__ import annotations

import logging
import time

import pytest

from monitoring.app import cli
from monitoring.cmlclient import connect
from monitoring.cmlclient.retry import RetryPolicy
from monitoring.config.pipeline import RetryConfig, load_config
from monitoring.core.errors import PlatformRequestError, TransientPlatformError
from tests.cmlclient.support import api_error, enter_workspace, fail_first
from tests.project import make_project


class Failing:
    """Raises ``error`` on every call and counts the calls."""

    def __init__(self, error):
        self.error, self.calls = error, 0

    def __call__(self):
        self.calls += 1
        raise self.error


@pytest.mark.parametrize("attempts, waits", [(1, []), (3, [1.0, 2.0]), (6, [1.0, 2.0, 3.0, 3.0, 3.0])])
def test_the_configured_attempts_and_maximum_bound_the_retries(attempts, waits):
    sleeps = []
    policy = RetryPolicy.from_config(
        RetryConfig(attempts=attempts, initial="1s", maximum="3s", jitter="0s"), sleep=sleeps.append
    )
    fn = Failing(api_error(503, "unavailable"))
    with pytest.raises(TransientPlatformError, match="op: HTTP 503: unavailable"):
        policy.call("op", fn)
    assert fn.calls == attempts and sleeps == waits


def test_jitter_stays_within_the_configured_bound():
    sleeps = []
    policy = RetryPolicy.from_config(
        RetryConfig(attempts=6, initial="1s", maximum="20s", jitter="250ms"), sleep=sleeps.append
    )
    with pytest.raises(TransientPlatformError):
        policy.call("op", Failing(api_error(502, "bad gateway")))
    for wait, base in zip(sleeps, [1, 2, 4, 8, 16], strict=True):
        assert base <= wait <= base + 0.25


def test_a_warning_is_logged_before_each_wait_naming_the_operation_and_error(caplog):
    caplog.set_level(logging.WARNING, logger="monitoring.cmlclient.retry")
    logged_before_sleep = []
    policy = RetryPolicy(
        attempts=4,
        initial_s=1,
        maximum_s=8,
        jitter_s=0,
        sleep=lambda s: logged_before_sleep.append(len(caplog.records)),
    )
    with pytest.raises(TransientPlatformError):
        policy.call("list jobs", Failing(api_error(429, "slow down")))
    assert logged_before_sleep == [1, 2, 3]
    for number, record in enumerate(caplog.records, start=1):
        text = record.getMessage()
        assert f"attempt={number}" in text and 'operation="list jobs"' in text and "HTTP 429: slow down" in text


def test_the_injected_sleep_replaces_every_wait():
    sleeps = []
    policy = RetryPolicy(attempts=4, initial_s=60, maximum_s=600, jitter_s=0, sleep=sleeps.append)
    started = time.monotonic()
    with pytest.raises(TransientPlatformError):
        policy.call("op", Failing(TimeoutError("read timed out")))
    assert sleeps == [60, 120, 240] and time.monotonic() - started < 5


def test_connect_builds_the_policy_from_the_config(tmp_path, ws, monkeypatch):
    cfg = load_config(
        make_project(
            tmp_path / "p", {"platform": {"retry": {"attempts": 7, "initial": "2s", "maximum": "9s", "jitter": "0s"}}}
        )
    )
    enter_workspace(monkeypatch, ws)
    platform = connect(cfg, tmp_path / "p", sleep=lambda s: None)
    assert (platform.retry.attempts, platform.retry.initial_s, platform.retry.maximum_s) == (7, 2.0, 9.0)
    assert platform.api.retry is platform.retry and platform.metrics.retry is platform.retry


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_api_calls_are_retried_on_timeouts_throttling_and_server_errors(ws, client, api, sleeps, status):
    model = api.create_model("m", "d", auth_enabled=False)
    client.faults["get_model"] = fail_first(2, api_error(status, "try again"))
    assert api.get_model(model.id) == model
    assert len(client.named("get_model")) == 3 and sleeps == [1.0, 2.0]


def test_refusals_are_not_retried_and_keep_the_platform_message(ws, client, api, sleeps):
    with pytest.raises(PlatformRequestError, match=r"get model nope: HTTP 404: model 'nope' not found") as err:
        api.get_model("nope")
    assert err.value.status == 404 and err.value.exit_code == 3
    body = {"project_id": ws.project_id, "name": "x", "script": "scripts/ok.py", "runtime_identifier": "bogus"}
    with pytest.raises(
        PlatformRequestError,
        match=r"create job 'x': HTTP 400: runtime_identifier 'bogus' "
        r"is not a registered runtime",
    ):
        api.create_job(body)
    for status in (401, 403, 409):
        client.faults["list_jobs"] = fail_first(1, api_error(status, f"refused with {status}", code=7))
        with pytest.raises(PlatformRequestError, match=rf"list jobs: HTTP {status}: refused with {status}"):
            api.jobs()
    assert sleeps == [] and len(client.named("get_model")) == 1 and len(client.named("create_job")) == 1


def test_a_refusal_reaches_the_user_on_the_command_line(tmp_path, ws, monkeypatch, capsys):
    config = make_project(tmp_path / "p", {"jobs": {"runtime_identifier": "bogus-runtime"}})
    enter_workspace(monkeypatch, ws)
    code = cli.main(["graph", "apply", "--config", str(config), "--project-root", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == 3
    assert (
        "error: create job 'cml-monitor simulate_traffic': HTTP 400: runtime_identifier 'bogus-runtime' "
        "is not a registered runtime" in err
    )
