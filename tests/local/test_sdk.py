"""The local ``cdsw`` functions: CML's names, keywords, return shapes and dev mode."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

import pytest

from cmlbase.clock import WarpClock
from localcml.core.errors import ConfigError
from localcml.metrics import sdk
from localcml.metrics.server import MetricsServer
from localcml.metrics.store import MetricsStore

SHIM = Path(sdk.__file__).parents[1] / "shim"
T0 = 1_800_000_000_000
DEP, BUILD, MODEL = "crn:cdp:ml:local:acct:workspace:ws/dep-1", "crn:...:ws/build-1", "crn:...:ws/model-1"
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
ENV = (
    "CML_MONITOR_METRICS_URL",
    "CML_MONITOR_WORKSPACE",
    "CML_MONITOR_DEPLOYMENT_CRN",
    "CML_MONITOR_BUILD_CRN",
    "CML_MONITOR_MODEL_CRN",
    "CML_MONITOR_CLOCK_FILE",
    "CDSW_DOMAIN",
    "CDSW_APIV2_KEY",
)


@pytest.fixture
def clock(tmp_path, monkeypatch) -> WarpClock:
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    warp = WarpClock(tmp_path / "clock.json")
    warp.set_now(T0)
    monkeypatch.setenv("CML_MONITOR_CLOCK_FILE", str(warp.path))
    yield warp
    sdk.close_stores()


@pytest.fixture
def service(clock, tmp_path, monkeypatch) -> MetricsServer:
    """The workspace's metrics service over ``tmp_path/metrics.db``, where the SDK reaches it."""
    store = MetricsStore(f"sqlite:///{tmp_path / 'metrics.db'}")
    server = MetricsServer(store, "test-api-key", clock).start()
    monkeypatch.setenv("CDSW_DOMAIN", server.domain)
    monkeypatch.setenv("CDSW_APIV2_KEY", "test-api-key")
    yield server
    server.stop()
    store.close()


@pytest.fixture
def workspace(service, tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("CML_MONITOR_WORKSPACE", str(tmp_path))
    return tmp_path


@pytest.fixture
def replica(workspace, monkeypatch) -> MetricsStore:
    """The environment of a model replica; returns the workspace store to inspect."""
    monkeypatch.setenv("CML_MONITOR_DEPLOYMENT_CRN", DEP)
    monkeypatch.setenv("CML_MONITOR_BUILD_CRN", BUILD)
    monkeypatch.setenv("CML_MONITOR_MODEL_CRN", MODEL)
    store = MetricsStore(f"sqlite:///{workspace / 'metrics.db'}")
    yield store
    store.close()


@sdk.model_metrics
def predict(args):
    sdk.track_metric("input_features", args)
    sdk.track_metric("prediction", int(args["x"] > 0))
    return {"label": int(args["x"] > 0)}


def test_signatures_match_cml_keyword_names():
    def params(fn):
        return [(p.name, p.default) for p in inspect.signature(fn).parameters.values()]

    empty = inspect.Parameter.empty
    assert params(sdk.track_metric) == [("key", empty), ("value", empty)]
    assert params(sdk.track_delayed_metrics) == [("metrics", empty), ("prediction_uuid", empty), ("dev", False)]
    assert params(sdk.track_aggregate_metrics) == [
        ("metrics", empty),
        ("start_timestamp_ms", empty),
        ("end_timestamp_ms", empty),
        ("model_deployment_crn", None),
        ("dev", False),
    ]
    assert params(sdk.read_metrics) == [
        ("model_deployment_crn", None),
        ("start_timestamp_ms", None),
        ("end_timestamp_ms", None),
        ("model_crn", None),
        ("model_build_crn", None),
        ("dev", False),
    ]
    assert params(sdk.call_model) == [("model_access_key", empty), ("ipt", empty), ("api_key", None)]


def test_decorated_call_returns_prediction_and_uuid_and_writes_one_record(replica):
    out = predict({"x": 2.5})

    assert set(out) == {"prediction", "uuid"} and out["prediction"] == {"label": 1}
    assert UUID4.match(out["uuid"])
    [record] = replica.read(DEP)
    assert record["predictionUuid"] == out["uuid"]
    assert (record["modelDeploymentCrn"], record["modelBuildCrn"], record["modelCrn"]) == (DEP, BUILD, MODEL)
    assert record["metrics"] == {"input_features": {"x": 2.5}, "prediction": 1}
    assert T0 <= record["startTimeStampMs"] <= record["endTimeStampMs"] < T0 + 60_000
    assert predict({"x": -1})["uuid"] != out["uuid"] and replica.count() == 2


def test_a_call_that_raises_writes_nothing_and_leaves_no_open_record(replica):
    @sdk.model_metrics
    def failing(args):
        sdk.track_metric("seen", 1)
        raise RuntimeError("bad input")

    with pytest.raises(RuntimeError, match="bad input"):
        failing({})

    assert replica.count() == 0
    with pytest.raises(ValueError, match="experiment metric"):
        sdk.track_metric("seen", {"not": "scalar"})  # outside any decorated call again


def test_invalid_tracked_value_fails_the_call_naming_the_key(replica):
    @sdk.model_metrics
    def nan_model(args):
        sdk.track_metric("probability", float("nan"))
        return 0

    with pytest.raises(ValueError, match="probability"):
        nan_model({})
    assert replica.count() == 0


def test_track_metric_outside_a_decorated_call_is_an_experiment_metric(clock):
    sdk.track_metric("accuracy", 0.9)  # logged only; no store needed

    with pytest.raises(ValueError, match="experiment metric 'inputs'"):
        sdk.track_metric("inputs", {"a": 1})


def test_dev_mode_outside_a_replica_uses_a_private_store(clock):
    out = predict({"x": 1})  # no deployment CRN and no workspace configured: CML's dev mode

    records = sdk.read_metrics(model_deployment_crn=sdk.dev_model_deployment_crn, dev=True)["metrics"]
    assert [r["predictionUuid"] for r in records] == [out["uuid"]]
    sdk.track_delayed_metrics({"final_label": 1}, out["uuid"], dev=True)
    sdk.track_aggregate_metrics(
        {"accuracy": 1.0}, T0 - 1_000, T0, model_deployment_crn=sdk.dev_model_deployment_crn, dev=True
    )
    records = sdk.read_metrics(dev=True)["metrics"]
    assert [r["metrics"] for r in records] == [
        {"accuracy": 1.0},
        {"input_features": {"x": 1}, "prediction": 1, "final_label": 1},
    ]
    with pytest.raises(ConfigError, match="CDSW_DOMAIN is not set: the model metrics service is found from it"):
        sdk.read_metrics(model_deployment_crn=sdk.dev_model_deployment_crn)


def test_delayed_and_aggregate_metrics_by_keyword(replica):
    uuid = predict({"x": 3})["uuid"]

    sdk.track_delayed_metrics(metrics={"final_label": 0}, prediction_uuid=uuid)
    sdk.track_aggregate_metrics(
        metrics={"accuracy": 0.0}, start_timestamp_ms=T0 - 3_600_000, end_timestamp_ms=T0, model_deployment_crn=DEP
    )

    records = sdk.read_metrics(
        model_deployment_crn=DEP, start_timestamp_ms=T0 - 3_600_000, end_timestamp_ms=T0 + 60_000
    )["metrics"]
    assert [(r["predictionUuid"], r["metrics"]) for r in records] == [
        ("", {"accuracy": 0.0}),
        (uuid, {"input_features": {"x": 3}, "prediction": 1, "final_label": 0}),
    ]
    assert records[0]["endTimeStampMs"] == T0 and records[0]["modelCrn"] == MODEL
    with pytest.raises(ValueError, match="no prediction record with uuid not-a-uuid"):
        sdk.track_delayed_metrics({"final_label": 1}, "not-a-uuid")


def test_read_metrics_defaults_to_start_zero_and_end_now(replica, clock):
    replica.track_prediction(DEP, BUILD, MODEL, "early", 5, 6, {})
    replica.track_prediction(DEP, BUILD, MODEL, "future", T0 + 60_000, T0 + 60_001, {})

    assert [r["predictionUuid"] for r in sdk.read_metrics(model_deployment_crn=DEP)["metrics"]] == ["early"]
    clock.set_now(T0 + 120_000)
    assert [r["predictionUuid"] for r in sdk.read_metrics(model_deployment_crn=DEP)["metrics"]] == ["early", "future"]
    assert set(sdk.read_metrics(model_crn=MODEL, model_build_crn=BUILD)) == {"metrics"}


def test_read_metrics_needs_a_crn_outside_a_replica(workspace):
    with pytest.raises(ValueError, match="needs model_deployment_crn"):
        sdk.read_metrics(start_timestamp_ms=0, end_timestamp_ms=1)
    with pytest.raises(ValueError, match="model_deployment_crn"):
        sdk.track_aggregate_metrics({"accuracy": 1.0}, 0, 1)


def test_each_sdk_call_is_one_http_call_to_the_metrics_service(replica, service, monkeypatch):
    calls = []
    answer = service.answer
    service.answer = lambda path, raw, latency: calls.append(path) or answer(path, raw, latency)
    out = predict({"x": 3})
    sdk.track_delayed_metrics({"final_label": 1}, out["uuid"])
    sdk.track_aggregate_metrics({"accuracy": 1.0}, 0, 1, model_deployment_crn=DEP)
    sdk.read_metrics(model_deployment_crn=DEP)
    assert calls == ["/track-metrics", "/track-delayed-metrics", "/track-aggregate-metrics", "/read-metrics"]
    with pytest.raises(ValueError, match="no prediction record with uuid nope"):  # the service's 404, as a ValueError
        sdk.track_delayed_metrics({"final_label": 1}, "nope")
    monkeypatch.setenv("CDSW_APIV2_KEY", "wrong")
    with pytest.raises(ValueError, match="Bearer"):
        sdk.read_metrics(model_deployment_crn=DEP)
    monkeypatch.delenv("CDSW_DOMAIN")
    with pytest.raises(ConfigError, match="CDSW_DOMAIN is not set"):
        sdk.read_metrics(model_deployment_crn=DEP)


def test_call_model_checks_input_and_builds_the_endpoint_from_cdsw_domain(clock, monkeypatch):
    with pytest.raises(ConfigError, match="CDSW_DOMAIN"):
        sdk._get_model_call_endpoint()
    monkeypatch.setenv("CDSW_DOMAIN", "127.0.0.1:8123")
    assert sdk._get_model_call_endpoint() == "http://modelservice.127.0.0.1:8123/model"
    with pytest.raises(TypeError, match="ipt must be a dict"):
        sdk.call_model("key", '{"x": 1}')


@pytest.fixture
def shim_modules(monkeypatch):
    monkeypatch.syspath_prepend(str(SHIM))
    yield
    for name in [n for n in sys.modules if n == "cdsw" or n == "cml" or n.startswith("cml.")]:
        del sys.modules[name]


def test_shim_modules_expose_the_same_functions(shim_modules, replica):
    import cdsw
    from cml import metrics_v1, models_v1

    for name in sdk.__all__:  # the store-touching ones wrap the SDK's with the metrics fault point
        ours = getattr(cdsw, name)
        assert getattr(ours, "__wrapped__", ours) is getattr(sdk, name) or name == "model_metrics"
    assert cdsw._get_model_call_endpoint is sdk._get_model_call_endpoint
    assert metrics_v1.read_metrics is sdk.read_metrics and metrics_v1.track_metric is sdk.track_metric
    assert models_v1.call_model is sdk.call_model

    @models_v1.cml_model(metrics=True)
    def tracked(args):
        metrics_v1.track_metric("seen", args["v"])
        return args["v"] * 2

    def plain(args):
        return args

    out = tracked({"v": 4})

    assert out["prediction"] == 8 and UUID4.match(out["uuid"])
    assert replica.read(DEP)[0]["metrics"] == {"seen": 4}
    assert models_v1.cml_model(metrics=False)(plain) is plain and models_v1.cml_model(plain) is plain
