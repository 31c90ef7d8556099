"""The local model metrics store keeps CML's record shape and semantics, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from localcml.metrics.store import MetricsStore

#: The keys of a record in CML's read_metrics output, in the order of the CHURN AMP sample.
RECORD_KEYS = [
    "modelDeploymentCrn",
    "modelBuildCrn",
    "modelCrn",
    "startTimeStampMs",
    "endTimeStampMs",
    "predictionUuid",
    "metrics",
]
WS = "crn:cdp:ml:us-west-1:acct:workspace:ws"
DEP, BUILD, MODEL = f"{WS}/dep-1", f"{WS}/build-1", f"{WS}/model-1"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'metrics.db'}"
    return request.getfixturevalue("new_pg_database")("metrics")


@pytest.fixture
def store(store_url):
    s = MetricsStore(store_url)
    yield s
    s.close()


def test_prediction_record_has_exactly_cmls_shape(store):
    metrics = {"input_data": {"tenure": 8.0, "Contract": "Month-to-month"}, "probability": 0.348, "prediction": 1}
    store.track_prediction(DEP, BUILD, MODEL, "12f34405-38fa", 1596185125125, 1596185125233, metrics)

    [record] = store.read(DEP)

    assert list(record) == RECORD_KEYS
    assert record == {
        "modelDeploymentCrn": DEP,
        "modelBuildCrn": BUILD,
        "modelCrn": MODEL,
        "startTimeStampMs": 1596185125125,
        "endTimeStampMs": 1596185125233,
        "predictionUuid": "12f34405-38fa",
        "metrics": metrics,
    }
    assert "startTimestampMs" not in record  # the request-side spelling must not leak into records


def test_aggregate_record_has_empty_uuid_and_the_deployments_model_and_build(store):
    store.track_prediction(DEP, BUILD, MODEL, "p1", 1_000, 1_100, {"prediction": 0})

    store.track_aggregate({"accuracy": 0.91}, 1_000, 60_000, DEP)

    aggregates = [r for r in store.read(DEP) if r["predictionUuid"] == ""]
    assert aggregates == [
        {
            "modelDeploymentCrn": DEP,
            "modelBuildCrn": BUILD,
            "modelCrn": MODEL,
            "startTimeStampMs": 1_000,
            "endTimeStampMs": 60_000,
            "predictionUuid": "",
            "metrics": {"accuracy": 0.91},
        }
    ]
    assert [r["predictionUuid"] for r in store.read(DEP, model_crn=MODEL)] == ["p1", ""]


def test_aggregate_without_predictions_uses_given_or_empty_crns(store):
    store.track_aggregate({"accuracy": 0.5}, 0, 10, "dep-x")
    store.track_aggregate({"accuracy": 0.6}, 20, 30, "dep-x", model_crn="m", build_crn="b")

    records = store.read("dep-x")

    assert [(r["modelCrn"], r["modelBuildCrn"], r["predictionUuid"]) for r in records] == [("", "", ""), ("m", "b", "")]
    with pytest.raises(ValueError, match="model_deployment_crn"):
        store.track_aggregate({"accuracy": 0.5}, 0, 10, "")


def test_delayed_metrics_merge_into_the_same_record(store):
    store.track_prediction(DEP, BUILD, MODEL, "p1", 10, 20, {"probability": 0.7, "final_label": None})
    store.track_aggregate({"accuracy": 1.0}, 0, 100, DEP)

    store.track_delayed({"final_label": 1, "source": "ops"}, "p1")

    assert store.count() == 2
    [record] = [r for r in store.read(DEP) if r["predictionUuid"] == "p1"]
    assert record["metrics"] == {"probability": 0.7, "final_label": 1, "source": "ops"}
    assert (record["startTimeStampMs"], record["endTimeStampMs"]) == (10, 20)


def test_delayed_metrics_for_an_unknown_uuid_name_it(store):
    with pytest.raises(ValueError, match="no prediction record with uuid nope-123"):
        store.track_delayed({"final_label": 1}, "nope-123")
    with pytest.raises(ValueError, match="prediction uuid"):
        store.track_delayed({"final_label": 1}, "")


def test_delayed_many_is_all_or_nothing(store):
    for i in range(3):
        store.track_prediction(DEP, BUILD, MODEL, f"p{i}", i, i, {"i": i})

    with pytest.raises(ValueError, match="uuid missing-1"):
        store.track_delayed_many([("p0", {"y": 0}), ("missing-1", {"y": 1}), ("p1", {"y": 1})])
    assert [r["metrics"] for r in store.read(DEP)] == [{"i": 0}, {"i": 1}, {"i": 2}]

    updated = store.track_delayed_many([("p0", {"y": 0}), ("p2", {"y": 1}), ("p2", {"y": 2, "z": True})])

    assert updated == 2
    assert [r["metrics"] for r in store.read(DEP)] == [{"i": 0, "y": 0}, {"i": 1}, {"i": 2, "y": 2, "z": True}]


def test_window_is_inclusive_on_start_timestamp(store):
    for uuid, start, end in [("a", 100, 150), ("b", 200, 250), ("c", 300, 399), ("d", 400, 401)]:
        store.track_prediction(DEP, BUILD, MODEL, uuid, start, end, {})

    def uuids(**kw):
        return [r["predictionUuid"] for r in store.read(DEP, **kw)]

    assert uuids(start_ms=200, end_ms=300) == ["b", "c"]
    assert uuids(start_ms=201, end_ms=299) == []
    assert uuids(start_ms=150, end_ms=199) == []  # "a" ends inside but starts before: excluded
    assert uuids(start_ms=300) == ["c", "d"]
    assert uuids() == ["a", "b", "c", "d"]


def test_read_filters_by_deployment_model_and_build(store):
    store.track_prediction("dep-a", "build-a", "model-1", "p1", 1, 2, {})
    store.track_prediction("dep-b", "build-b", "model-1", "p2", 3, 4, {})
    store.track_prediction("dep-c", "build-c", "model-2", "p3", 5, 6, {})

    assert [r["predictionUuid"] for r in store.read(model_crn="model-1")] == ["p1", "p2"]
    assert [r["predictionUuid"] for r in store.read(build_crn="build-b")] == ["p2"]
    assert [r["predictionUuid"] for r in store.read("dep-a", model_crn="model-2")] == []
    assert store.count("dep-c") == 1 and store.count() == 3


@pytest.mark.parametrize(
    "bad, where",
    [
        ({"probability": float("nan")}, "probability"),
        ({"probability": float("inf")}, "probability"),
        ({"input_features": {"iot_signal_1": float("-inf")}}, "iot_signal_1"),
        ({"scores": [0.1, float("nan")]}, r"scores'\]\[1\]"),
        ({"prediction": np.int64(1)}, "prediction.*int64"),
        ({"when": object()}, "when.*not JSON"),
    ],
)
def test_invalid_values_are_rejected_naming_the_key(store, bad, where):
    with pytest.raises(ValueError, match=where):
        store.track_prediction(DEP, BUILD, MODEL, "p1", 1, 2, bad)
    store.track_prediction(DEP, BUILD, MODEL, "p1", 1, 2, {})
    with pytest.raises(ValueError, match=where):
        store.track_delayed(bad, "p1")
    with pytest.raises(ValueError, match=where):
        store.track_aggregate(bad, 1, 2, DEP)
    assert store.read(DEP)[0]["metrics"] == {} and store.count() == 1


def test_numpy_floats_and_ints_for_timestamps_are_accepted(store):
    store.track_prediction(DEP, BUILD, MODEL, "p1", np.int64(5), np.int64(6), {"probability": np.float64(0.25)})

    assert store.read(DEP)[0]["metrics"] == {"probability": 0.25}


def test_duplicate_uuid_and_bad_windows_are_refused(store):
    store.track_prediction(DEP, BUILD, MODEL, "p1", 1, 2, {})

    with pytest.raises(ValueError, match="p1 already has a record"):
        store.track_prediction(DEP, BUILD, MODEL, "p1", 3, 4, {})
    with pytest.raises(ValueError, match="end 1 is before start 2"):
        store.track_prediction(DEP, BUILD, MODEL, "p2", 2, 1, {})
    with pytest.raises(ValueError, match="reserved for aggregates"):
        store.track_prediction(DEP, BUILD, MODEL, "", 1, 2, {})
    with pytest.raises(ValueError, match="must be a dict"):
        store.track_aggregate([("accuracy", 1.0)], 1, 2, DEP)


WRITER = textwrap.dedent("""
    import pathlib, sys, time
    from localcml.metrics.store import MetricsStore
    url, name, go = sys.argv[1], sys.argv[2], pathlib.Path(sys.argv[3])
    store = MetricsStore(url)
    shared = [r["predictionUuid"] for r in store.read("shared")]
    (go.parent / f"ready-{name}").touch()
    deadline = time.monotonic() + 30
    while not go.exists():
        if time.monotonic() > deadline:
            sys.exit("no go signal")
        time.sleep(0.002)
    for i, uuid in enumerate(shared):
        store.track_prediction(f"dep-{name}", "b", "m", f"{name}-{i}", i, i, {"i": i})
        store.track_delayed({name: i}, uuid)
""")


def test_two_processes_write_and_merge_concurrently_without_losing_keys(store, store_url, tmp_path):
    n = 40
    for i in range(n):
        store.track_prediction("shared", "b", "m", f"s{i}", i, i, {"base": i})
    go = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, store_url, name, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("A", "B")
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n_}").exists() for n_ in ("A", "B")):
        assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
        assert time.monotonic() < deadline, "writers did not start"
        time.sleep(0.01)
    go.touch()
    results = [p.communicate(timeout=120) for p in procs]

    assert [p.returncode for p in procs] == [0, 0], results
    assert store.count() == 3 * n
    assert [r["metrics"] for r in store.read("shared")] == [{"base": i, "A": i, "B": i} for i in range(n)]
    assert [r["predictionUuid"] for r in store.read("dep-B")] == [f"B-{i}" for i in range(n)]


def test_bulk_insert_writes_records_read_back_in_cmls_shape(store):
    rows = [
        (DEP, BUILD, MODEL, f"u{i}", 1_000 + i, 1_010 + i, f'{{"prediction":{i % 2},"x":{{"a":{i}}}}}')
        for i in range(3)
    ]

    assert store.bulk_insert(rows) == 3

    records = store.read(DEP)
    assert [list(r) for r in records] == [RECORD_KEYS] * 3
    assert [(r["predictionUuid"], r["startTimeStampMs"], r["metrics"]) for r in records] == [
        ("u0", 1_000, {"prediction": 0, "x": {"a": 0}}),
        ("u1", 1_001, {"prediction": 1, "x": {"a": 1}}),
        ("u2", 1_002, {"prediction": 0, "x": {"a": 2}}),
    ]


def test_bulk_insert_of_a_known_uuid_writes_nothing(store):
    store.track_prediction(DEP, BUILD, MODEL, "u1", 1, 2, {"prediction": 1})

    with pytest.raises(ValueError, match="already has a record"):
        store.bulk_insert([(DEP, BUILD, MODEL, "u0", 1, 2, "{}"), (DEP, BUILD, MODEL, "u1", 1, 2, "{}")])

    assert [r["predictionUuid"] for r in store.read(DEP)] == ["u1"]


@pytest.mark.parametrize(
    "row, message",
    [
        ((DEP, BUILD, MODEL, "", 1, 2, "{}"), "bulk row 0: uuid and deployment CRN"),
        ((DEP, BUILD, MODEL, "u", 5, 2, "{}"), "bulk row 0 .prediction u.: end 2 is before start 5"),
        ((DEP, BUILD, MODEL, "u", 1, 2, "[1]"), "metrics must be JSON object text"),
        ((DEP, BUILD, MODEL, "u", 1, 2), "expected 7 fields"),
    ],
)
def test_bulk_insert_refuses_bad_rows_naming_them(store, row, message):
    with pytest.raises(ValueError, match=message):
        store.bulk_insert([row])
    assert store.count() == 0


def test_aggregate_takes_the_crns_of_the_latest_prediction_by_start_time(store):
    store.track_prediction(DEP, "build-new", "model-new", "late", 5_000, 5_001, {"prediction": 1})
    store.track_prediction(DEP, "build-old", "model-old", "early", 1_000, 1_001, {"prediction": 0})

    store.track_aggregate({"accuracy": 1.0}, 0, 10_000, DEP)

    [aggregate] = [r for r in store.read(DEP) if r["predictionUuid"] == ""]
    assert (aggregate["modelCrn"], aggregate["modelBuildCrn"]) == ("model-new", "build-new")
