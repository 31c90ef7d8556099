"""decode_dump: JSON text to columns, equal to records_to_columns on the parsed records, fast path or not."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monitoring.core.errors import DataError
from monitoring.domain.records import dumps
from monitoring.domain.records.columns import Columns
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.records.dumps import decode_dump
from tests.domain.support import FEATURES, T0, aggregate, prediction, record
from tests.domain.test_records import sample


def text(records: list) -> bytes:
    return json.dumps({"metrics": records}).encode()


def assert_same(a: Columns, b: Columns) -> None:
    assert a.feature_names == b.feature_names
    assert a.counts == b.counts
    assert a.uuid.tolist() == b.uuid.tolist() and a.deployment_crn.tolist() == b.deployment_crn.tolist()
    assert a.start_ms.dtype == b.start_ms.dtype == np.int64
    np.testing.assert_array_equal(a.start_ms, b.start_ms)
    for name in ("prediction", "label", "latency_ms", "features"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


def well_formed(n: int = 300) -> list:
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        feats = dict(zip(FEATURES, rng.normal(0, 1, 4).round(3).tolist()))
        label = int(rng.integers(0, 2)) if i % 4 else None
        start = T0 + int(rng.integers(0, 7_200_000))  # out of order
        out.append(prediction(f"u{i}", start, int(rng.integers(0, 2)), label=label, features=feats))
        if i % 50 == 0:
            out.append(aggregate(start, start + 3_600_000, 0.8))
    out.append(prediction("u7", T0 + 5, 1, label=0, features=dict.fromkeys(FEATURES, 1.5)))  # duplicate uuid
    out.append(prediction("x8", None, 1, label=0, features=dict.fromkeys(FEATURES, 1.5)))  # no start time
    out[3]["metrics"]["input_features"]["iot_signal_2"] = None  # a missing value
    del out[5]["endTimeStampMs"]
    return out


@pytest.fixture
def no_general_path(monkeypatch):
    """Fail if the dump falls back to the general path (records_to_columns on parsed records)."""

    def refuse(*args, **kwargs):
        raise AssertionError("took the general path")

    monkeypatch.setattr(dumps, "records_to_columns", refuse)


def test_well_formed_dump_takes_the_fast_path_and_equals_records_to_columns(no_general_path):
    recs = well_formed()
    expected = records_to_columns(json.loads(text(recs))["metrics"], FEATURES)
    got = decode_dump(text(recs), FEATURES)
    assert_same(got, expected)
    assert got.counts["aggregates"] == 6 and got.counts["duplicate_uuid"] == 1 and got.counts["bad_timestamp"] == 1
    assert got.counts["missing_features"] == 1


def test_feature_names_are_inferred_from_the_first_records(no_general_path):
    recs = well_formed(40)
    for r in recs:
        if r["predictionUuid"]:
            r["metrics"]["input_features"]["extra"] = 4.0
    expected = records_to_columns(json.loads(text(recs))["metrics"], sorted([*FEATURES, "extra"]))
    assert_same(decode_dump(text(recs)), expected)
    assert dumps.feature_names_of([{"b": 1}, None, {"a": 2}, {"c": 3}], scan=2) == ["a", "b"]


def test_odd_records_take_the_general_path_with_the_same_result():
    recs = sample()  # lists, string and bool labels, bad values, non-dicts, missing metrics
    assert_same(decode_dump(text(recs), FEATURES), records_to_columns(json.loads(text(recs))["metrics"], FEATURES))
    inferred = decode_dump(text(recs))
    assert inferred.feature_names == tuple(sorted(FEATURES))


@pytest.mark.parametrize(
    "change",
    [
        lambda r: r[4]["metrics"].update(prediction=True),  # a bool prediction reads as 1
        lambda r: r[4]["metrics"].update(final_label="1"),  # a string label
        lambda r: r[4]["metrics"]["input_features"].update(iot_signal_1="n/a"),  # text in a feature
        lambda r: r[4]["metrics"]["input_features"].pop("iot_signal_1"),  # a feature missing
        lambda r: r[4]["metrics"].pop("input_features"),  # no features at all
        lambda r: r[4].pop("predictionUuid"),  # no uuid: malformed
        lambda r: r.append(record("x1", T0, {"final_label": 1})),  # label-only record
    ],
)
def test_each_oddity_gives_the_same_columns_as_records_to_columns(change):
    recs = well_formed(30)
    change(recs)
    assert_same(decode_dump(text(recs), FEATURES), records_to_columns(json.loads(text(recs))["metrics"], FEATURES))


def test_nan_and_infinity_literals_are_read_as_json_reads_them():
    recs = well_formed(20)
    body = text(recs).replace(b'"iot_signal_1": ', b'"iot_signal_1": NaN, "was": ', 1)
    body = body.replace(b'"prediction": 1', b'"prediction": Infinity', 1)
    got = decode_dump(body, FEATURES)
    assert_same(got, records_to_columns(json.loads(body)["metrics"], FEATURES))
    assert got.counts["bad_prediction"] == 1


def test_custom_keys(no_general_path):
    recs = [
        {
            **r,
            "metrics": {
                "y_hat": r["metrics"]["prediction"],
                "truth": r["metrics"].get("final_label"),
                "x": r["metrics"]["input_features"],
            },
        }
        for r in well_formed(50)
        if r["predictionUuid"]
    ]
    got = decode_dump(text(recs), FEATURES, prediction_key="y_hat", label_key="truth", features_key="x")
    expected = records_to_columns(recs, FEATURES, prediction_key="y_hat", label_key="truth", features_key="x")
    assert_same(got, expected)
    assert not math.isnan(got.label[1])


def test_a_dump_of_aggregates_only_and_an_empty_one():
    got = decode_dump(text([aggregate(T0, T0 + 1, 0.5)]))
    assert len(got) == 0 and got.counts["aggregates"] == 1 and got.feature_names == ()
    assert len(decode_dump(b'{"metrics": []}', FEATURES)) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"[1, 2]", "expected a read_metrics dump"),
        (b'{"records": []}', "expected a read_metrics dump"),
        (b'{"metrics": {}}', "expected a read_metrics dump"),
        (b"{nope", "not JSON"),
        (b"", "not JSON"),
    ],
)
def test_wrong_shapes_are_data_errors(body, message):
    with pytest.raises(DataError, match=message):
        decode_dump(body)


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of about 2 kB, so that a test dump is cut in many places."""
    monkeypatch.setattr(dumps, "PIECE_BYTES", 2000)


def test_a_dump_cut_in_pieces_equals_records_to_columns(small_pieces, no_general_path):
    recs = well_formed(200)
    recs.append(prediction("u3", T0 + 1, 0, label=1, features=dict.fromkeys(FEATURES, 0.5)))  # duplicate, far apart
    body = text(recs)
    assert len(list(dumps._pieces(body))) > 20
    got = decode_dump(body, FEATURES)
    assert_same(got, records_to_columns(json.loads(body)["metrics"], FEATURES))
    assert got.counts["duplicate_uuid"] == 2
    assert_same(decode_dump(json.dumps({"metrics": recs}, indent=2).encode(), FEATURES), got)  # cuts between lines


def test_pieces_that_do_not_decode_fall_back_to_the_whole_dump(small_pieces, no_general_path):
    recs = well_formed(120)
    for r in recs:
        r["metrics"]["model_version"] = "odd},{text"  # a boundary look-alike inside a string
    body = text(recs)
    assert_same(decode_dump(body, FEATURES), records_to_columns(json.loads(body)["metrics"], FEATURES))
    with_other_key = json.dumps({"metrics": recs[:60], "note": [{"a": 1}, {"b": 2}] * 200}).encode()
    assert_same(decode_dump(with_other_key, FEATURES), records_to_columns(recs[:60], FEATURES))


def test_feature_names_need_enough_records_in_the_first_piece(small_pieces):
    recs = well_formed(60)
    for r in recs[40:]:
        if r["predictionUuid"]:
            r["metrics"]["input_features"]["late"] = 1.0  # seen only past the first pieces
    body = text(recs)
    got = decode_dump(body)
    assert got.feature_names == tuple(sorted([*FEATURES, "late"]))  # scanned as without pieces
    assert_same(got, records_to_columns(json.loads(body)["metrics"], got.feature_names))
    assert got.counts["missing_features"] > 30
