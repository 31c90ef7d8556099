"""A standing latency in the fault plan delays every client call to the model and metrics services, not serving."""

from __future__ import annotations

import time

import pytest

from localcml.core.errors import ConfigError
from localcml.faults import Fault
from localcml.metrics import sdk
from tests.local.support import call

DELAY_S = 0.2


def timed(fn, *args, **kwargs) -> float:
    started = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - started


def test_latency_entries_parse_and_are_standing():
    assert Fault.parse("latency.*=delay:50ms always") == Fault("latency.*", "delay", seconds=0.05, times=None)
    for text, message in (
        ("latency.model=delay:50ms x3", "latency is standing"),
        ("latency.api=delay:1s always", "'api' is not one of"),
    ):
        with pytest.raises(ConfigError, match=message):
            Fault.parse(text)


def test_model_and_metrics_calls_wait_and_a_replicas_own_record_does_not(ws, api, model, build_of, deploy, monkeypatch):
    dep = deploy(build_of("models/metered.py"))
    for key in ("CDSW_DOMAIN", "CDSW_APIV2_KEY", "CML_MONITOR_CLOCK_FILE"):  # this process acts as a job's engine
        monkeypatch.setenv(key, ws.engine_env()[key])
    served = call(ws, model.access_key, {"x": 1}).json()["response"]
    fast_model = timed(call, ws, model.access_key, {"x": 2})
    fast_delayed = timed(sdk.track_delayed_metrics, {"final_label": 1}, served["uuid"])
    ws.inject(f"latency.*=delay:{int(DELAY_S * 1000)}ms always")
    slow_model = timed(call, ws, model.access_key, {"x": 3})
    slow_delayed = timed(sdk.track_delayed_metrics, {"final_label": 0}, served["uuid"])
    slow_read = timed(sdk.read_metrics, model_deployment_crn=dep.crn)
    assert slow_model >= DELAY_S and slow_delayed >= DELAY_S and slow_read >= DELAY_S
    # the model call waited once (its round trip), not twice: the replica's own record was not delayed
    assert slow_model < DELAY_S + 0.15 + fast_model, (slow_model, fast_model)
    assert fast_delayed < DELAY_S
    ws.faults.clear("latency.*")
    assert timed(sdk.track_delayed_metrics, {"final_label": 1}, served["uuid"]) < DELAY_S
