"""records_to_columns on CML's read_metrics record shape, including every oddity the store can return."""

from __future__ import annotations

import math

import numpy as np

from monitoring.domain.records import decode, fast_path
from monitoring.domain.records.columns import COUNT_NAMES, Columns
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.records.keys import RECORD_KEYS, Keys
from monitoring.domain.records.values import Reading
from tests.domain.support import DEPLOYMENT, FEATURES, T0, aggregate, model_spec, prediction, record

OTHER = DEPLOYMENT[:-4] + "beef"
NAN = math.nan


def sample() -> list[dict]:
    """Unsorted, with aggregates, duplicates, lists, string/bool labels, bad values and malformed rows."""
    feats = {"iot_signal_1": 2.0, "iot_signal_2": 50.5, "iot_signal_3": 101.0, "iot_signal_4": 10.0}
    return [
        prediction("u3", T0 + 300, 1, label="1"),  # string label
        aggregate(T0, T0 + 3_600_000, 0.79),  # aggregate: skipped
        prediction("u1", T0 + 100, [0], label=True),  # MLflow-style list, bool label
        prediction("u2", T0 + 200, 1, label=1.0, features=feats),
        prediction("u4", T0 + 400, 0),  # not labelled yet
        prediction(
            "u5",
            T0 + 500,
            1,
            label=0,
            crn=OTHER,
            features={"iot_signal_1": 1.0, "iot_signal_2": None, "iot_signal_3": 100.5},
        ),
        prediction(
            "u6", T0 + 600, 0, label="maybe", features={**feats, "iot_signal_3": float("inf"), "iot_signal_4": "n/a"}
        ),
        record("u7", T0 + 700, {"final_label": 1}),  # label without a prediction
        prediction("u8", T0 + 800, 1, label=0.5),  # fractional label: bad
        prediction("u4", T0 + 400, 0, label=1),  # duplicate: the later copy wins
        aggregate(T0 + 3_600_000, T0 + 7_200_000, 0.67),
        "not a record",
        {"predictionUuid": "u9", "startTimeStampMs": T0 + 900},  # no metrics dict
        prediction("u10", None, 1, label=1),  # no timestamp
        prediction("u11", T0 + 50, [1, 0], label=[1]),  # two-element prediction: bad
    ]


def test_sample_records_become_sorted_columns():
    cols = records_to_columns(sample(), FEATURES)
    assert list(cols.uuid) == ["u11", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"]
    assert cols.uuid.dtype == object and cols.deployment_crn.dtype == object
    assert cols.start_ms.dtype == np.int64
    assert cols.start_ms.tolist() == [T0 + d for d in (50, 100, 200, 300, 400, 500, 600, 700, 800)]
    np.testing.assert_array_equal(cols.prediction, [NAN, 0, 1, 1, 0, 1, 0, NAN, 1])
    np.testing.assert_array_equal(cols.label, [1, 1, 1, 1, 1, 0, NAN, 1, NAN])
    assert cols.deployment_crn.tolist() == [DEPLOYMENT] * 5 + [OTHER] + [DEPLOYMENT] * 3
    assert cols.features.shape == (9, 4)
    np.testing.assert_array_equal(cols.features[2], [2.0, 50.5, 101.0, 10.0])
    np.testing.assert_array_equal(cols.features[5], [1.0, NAN, 100.5, NAN])
    np.testing.assert_array_equal(cols.features[6], [2.0, 50.5, NAN, NAN])
    np.testing.assert_array_equal(cols.features[7], [NAN] * 4)
    assert cols.feature_names == tuple(FEATURES) and len(cols) == 9
    assert cols.latency_ms.dtype == np.float64
    np.testing.assert_array_equal(cols.latency_ms, [110.0] * 9)  # support.record ends 110 ms after the start


def test_sample_counts_say_what_was_ignored():
    counts = records_to_columns(sample(), FEATURES).counts
    assert counts == {
        "records": 15,
        "aggregates": 2,
        "malformed": 2,
        "duplicate_uuid": 1,
        "bad_timestamp": 1,
        "missing_prediction": 1,
        "bad_prediction": 1,
        "bad_label": 2,
        "missing_features": 2,
        "non_finite": 1,
    }
    assert tuple(counts) == COUNT_NAMES


def test_label_map_translates_raw_labels():
    records = [
        prediction("a", T0, 1, label="yes"),
        prediction("b", T0 + 1, 0, label="no"),
        prediction("c", T0 + 2, 0, label="unknown"),
        prediction("d", T0 + 3, 0, label=1),
    ]
    spec = model_spec(label={"name": "y", "mapping": {"yes": 1, "no": 0}})
    cols = records_to_columns(records, spec)
    np.testing.assert_array_equal(cols.label, [1, 0, NAN, 1])
    assert cols.counts["bad_label"] == 1


def test_custom_keys_and_any_iterable():
    def gen():
        for i in range(3):
            yield record(f"r{i}", T0 + i, {"inputs": {"a": i}, "predicted_result": i % 2, "ground_truth": str(i % 2)})

    cols = records_to_columns(
        gen(), ["a"], prediction_key="predicted_result", label_key="ground_truth", features_key="inputs"
    )
    np.testing.assert_array_equal(cols.features[:, 0], [0, 1, 2])
    np.testing.assert_array_equal(cols.prediction, [0, 1, 0])
    np.testing.assert_array_equal(cols.label, [0, 1, 0])


def test_empty_and_aggregates_only():
    for batch in ([], [aggregate(T0, T0 + 10, 0.5)]):
        cols = records_to_columns(batch, FEATURES)
        assert len(cols) == 0 and cols.features.shape == (0, 4) and cols.start_ms.dtype == np.int64
        assert cols.latency_ms.shape == (0,) and cols.latency_ms.dtype == np.float64
    assert records_to_columns([aggregate(T0, T0 + 10, 0.5)], FEATURES).counts["aggregates"] == 1


def test_training_frame_keeps_labelled_complete_rows():
    frame = records_to_columns(sample(), FEATURES).training_frame("cell_tower_failure")
    assert frame.columns.tolist() == [*FEATURES, "cell_tower_failure", "start_ms"]
    assert frame["start_ms"].tolist() == [T0 + 100, T0 + 200, T0 + 300, T0 + 400]  # u11: unreadable prediction
    assert frame["cell_tower_failure"].dtype == np.int64
    cols = records_to_columns(sample(), FEATURES)
    other = cols.take(cols.deployment_crn == OTHER)
    assert other.uuid.tolist() == ["u5"] and other.features.shape == (1, 4) and other.counts == cols.counts


def with_end(rec: dict, end) -> dict:
    """The record with another ``endTimeStampMs`` (``...`` removes the key)."""
    out = {k: v for k, v in rec.items() if k != "endTimeStampMs"}
    if end is not ...:
        out["endTimeStampMs"] = end
    return out


def test_latency_is_end_minus_start_and_nan_when_the_end_is_unusable():
    cases = [  # (uuid, start offset, endTimeStampMs, expected latency)
        ("plain", 40, T0 + 40 + 123, 123.0),
        ("zero", 10, T0 + 10, 0.0),
        ("string", 30, str(T0 + 30 + 7), 7.0),
        ("fraction", 20, T0 + 20 + 2.5, 2.5),
        ("absent", 50, ..., NAN),
        ("none", 60, None, NAN),
        ("before-start", 70, T0 + 69, NAN),
        ("unreadable", 80, "soon", NAN),
        ("infinite", 90, math.inf, NAN),
        ("nan", 0, math.nan, NAN),
        ("list", 5, [T0 + 6], NAN),
    ]
    recs = [with_end(prediction(u, T0 + off, 1), end) for u, off, end, _ in cases]
    cols = records_to_columns(recs, FEATURES)
    expected = {u: lat for u, _, _, lat in cases}
    assert cols.uuid.tolist() == [u for u, *_ in sorted(cases, key=lambda c: c[1])]  # sorted by start
    np.testing.assert_array_equal(cols.latency_ms, [expected[u] for u in cols.uuid])
    assert cols.counts == {**dict.fromkeys(COUNT_NAMES, 0), "records": len(cases)}  # a bad end drops nothing


def test_latency_stays_aligned_through_duplicates_drops_sorting_and_take():
    recs = [
        with_end(prediction("b", T0 + 200, 1), T0 + 205),
        with_end(prediction("a", T0 + 100, 0), T0 + 111),
        aggregate(T0, T0 + 3_600_000, 0.8),
        with_end(prediction("x", None, 1), T0 + 1),  # no start: dropped with its end
        {"predictionUuid": "y", "startTimeStampMs": T0 + 1, "endTimeStampMs": T0 + 2},  # no metrics: dropped
        with_end(prediction("c", T0 + 50, 1), None),
        with_end(prediction("b", T0 + 200, 1, label=1), T0 + 230),
    ]  # the later copy (and its end) wins
    cols = records_to_columns(recs, FEATURES)
    assert cols.uuid.tolist() == ["c", "a", "b"]
    np.testing.assert_array_equal(cols.latency_ms, [NAN, 11.0, 30.0])
    np.testing.assert_array_equal(cols.take(np.array([2, 0])).latency_ms, [30.0, NAN])
    np.testing.assert_array_equal(cols.take(cols.uuid != "a").latency_ms, [NAN, 30.0])


def test_columns_built_without_latency_have_an_all_nan_latency():
    cols = records_to_columns(sample(), FEATURES)
    bare = Columns(
        cols.uuid, cols.start_ms, cols.deployment_crn, cols.prediction, cols.label, cols.features, cols.feature_names
    )
    assert bare.latency_ms.shape == (len(cols),) and np.isnan(bare.latency_ms).all()
    assert np.isnan(bare.take(np.array([1, 2])).latency_ms).all()


def naive(records, names):
    """The obvious per-record loop, as the reference for the fast path."""
    rows = {}
    for rec in records:
        if rec["predictionUuid"]:
            rows[rec["predictionUuid"]] = rec
    out = sorted(rows.values(), key=lambda r: r["startTimeStampMs"])
    m = [r["metrics"] for r in out]
    ends = [r.get("endTimeStampMs") for r in out]
    latency = [
        NAN if e is None or e < r["startTimeStampMs"] else float(e - r["startTimeStampMs"]) for e, r in zip(ends, out)
    ]
    return (
        [r["predictionUuid"] for r in out],
        [x.get("prediction", NAN) for x in m],
        [x.get("final_label", NAN) for x in m],
        [[x["input_features"].get(n, NAN) for n in names] for x in m],
        latency,
    )


def random_records(n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(n, 4)), 3).tolist()
    starts = (T0 + rng.integers(0, 7_200_000, n)).tolist()
    ends = (np.array(starts) + rng.integers(1, 2_000, n)).tolist()
    preds, labels = rng.integers(0, 2, n).tolist(), rng.integers(0, 2, n).tolist()
    recs = [
        prediction(f"{i:08x}", starts[i], preds[i], labels[i] if i % 3 else None, dict(zip(FEATURES, x[i])))
        for i in range(n)
    ]
    for rec, end in zip(recs, ends):
        rec["endTimeStampMs"] = end
    recs[5:5] = [aggregate(T0, T0 + 3_600_000, 0.9), aggregate(T0 + 3_600_000, T0 + 7_200_000, 0.8)]
    return recs


def test_fast_path_matches_a_naive_loop():
    recs = random_records(5000, 61)
    recs += [
        dict(r, metrics={**r["metrics"], "final_label": 1}, endTimeStampMs=r["startTimeStampMs"] + 7)
        for r in recs[100:130]
    ]  # late duplicates, with their own end
    recs[200]["endTimeStampMs"] = None
    recs[300]["endTimeStampMs"] = recs[300]["startTimeStampMs"] - 1
    cols = records_to_columns(recs, FEATURES)
    uuids, preds, labels, feats, latency = naive(recs, FEATURES)
    assert cols.uuid.tolist() == uuids
    np.testing.assert_array_equal(cols.prediction, preds)
    np.testing.assert_array_equal(cols.label, labels)
    np.testing.assert_array_equal(cols.features, feats)
    np.testing.assert_array_equal(cols.latency_ms, latency)
    assert np.isnan(cols.latency_ms).sum() == 2 and (cols.latency_ms == 7).sum() >= 30
    assert cols.counts["duplicate_uuid"] == 30 and cols.counts["aggregates"] == 2


def test_a_large_read_of_well_formed_records_takes_the_blocked_fast_path(monkeypatch):
    """How fast is the benchmarks' question (bench/, case a); here, deterministically: a large read of
    well-formed records never falls back to the per-record path (``test_fast_path_matches_a_naive_loop``
    shows the two agree)."""
    recs = random_records(12 * fast_path.BLOCK, 62)

    def per_record(*args, **kwargs):
        raise AssertionError("well-formed records fell back to the per-record path")

    monkeypatch.setattr(decode, "general_rows", per_record)
    cols = records_to_columns(recs, FEATURES)
    assert len(cols) == 12 * fast_path.BLOCK and cols.counts["malformed"] == 0
    assert set(cols.uuid.tolist()) == {r["predictionUuid"] for r in recs} - {""}  # aggregates are left out
    assert bool(np.all(np.diff(cols.start_ms) >= 0))


def test_unsorted_input_is_sorted_stably_and_dict_subclasses_are_records():
    from collections import OrderedDict

    recs = [
        prediction("late", T0 + 9, 1),
        prediction("tie-first", T0 + 5, 0),
        prediction("early", T0 + 1, 1),
        OrderedDict(prediction("tie-second", T0 + 5, 1)),
    ]
    cols = records_to_columns(recs, FEATURES)
    assert cols.uuid.tolist() == ["early", "tie-first", "tie-second", "late"]
    assert cols.counts["malformed"] == 0


def blocks_sample() -> list[dict]:
    """Well-formed records over several blocks, with every oddity the block path handles itself."""
    recs = random_records(300, 63)
    recs[40]["metrics"]["prediction"] = math.inf  # unreadable prediction
    del recs[41]["metrics"]["prediction"]  # missing prediction
    recs[42]["metrics"]["final_label"] = 0.5  # fractional label
    recs[43]["metrics"]["final_label"] = -math.inf  # unreadable label
    del recs[44]["endTimeStampMs"]  # no end: no latency
    recs[45]["endTimeStampMs"] = recs[45]["startTimeStampMs"] - 5  # end before start
    recs[46]["startTimeStampMs"] = math.nan  # no start: dropped
    recs[47]["metrics"]["input_features"]["iot_signal_2"] = math.nan
    recs[250]["modelDeploymentCrn"] = OTHER  # a second deployment, blocks after the first
    recs += [dict(recs[10], metrics={**recs[10]["metrics"], "final_label": 1})]  # a duplicate, blocks later
    return recs


def test_well_formed_records_take_the_block_path_with_the_general_paths_results(monkeypatch):
    monkeypatch.setattr(fast_path, "BLOCK", 16)  # many blocks, aggregates and duplicates across them
    recs = blocks_sample()
    counts = dict.fromkeys(COUNT_NAMES, 0)
    assert fast_path.well_formed_rows(recs, RECORD_KEYS, Keys(), Reading.of(FEATURES), counts) is not None
    fast = records_to_columns(recs, FEATURES)
    monkeypatch.setattr(decode, "well_formed_rows", lambda *args: None)
    general = records_to_columns(recs, FEATURES)
    for name in ("uuid", "start_ms", "deployment_crn", "prediction", "label", "features", "latency_ms"):
        got, want = getattr(fast, name), getattr(general, name)
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    assert (
        fast.counts
        == general.counts
        == {
            "records": 303,
            "aggregates": 2,
            "malformed": 0,
            "duplicate_uuid": 1,
            "bad_timestamp": 1,
            "missing_prediction": 1,
            "bad_prediction": 1,
            "bad_label": 2,
            "missing_features": 1,
            "non_finite": 0,
        }
    )
    assert (fast.deployment_crn == OTHER).sum() == 1 and fast.latency_ms.dtype == np.float64


def test_one_malformed_record_in_the_last_block_sends_all_to_the_general_path(monkeypatch):
    monkeypatch.setattr(fast_path, "BLOCK", 16)
    recs = blocks_sample()
    recs[-2]["metrics"]["input_features"] = "not a dict"
    assert (
        fast_path.well_formed_rows(recs, RECORD_KEYS, Keys(), Reading.of(FEATURES), dict.fromkeys(COUNT_NAMES, 0))
        is None
    )
    cols = records_to_columns(recs, FEATURES)
    assert cols.counts["missing_features"] == 2 and cols.counts["duplicate_uuid"] == 1
    uuids = naive([r for r in recs if not math.isnan(r["startTimeStampMs"])], [])[0]
    assert cols.uuid.tolist() == uuids and len(cols) == 299
