"""Records read as the model spec says: categorical features, mapped string classes, regression targets, probabilities."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monitoring.core.errors import DataError
from monitoring.domain.records import decode
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.records.dumps import decode_dump
from monitoring.domain.records.values import Reading, discover_classes, number_text
from tests.domain.support import T0, model_spec, prediction

NAN = math.nan
CHURN = model_spec(
    features=[
        {"name": "tenure", "kind": "numeric"},
        {"name": "contract", "kind": "categorical"},
        {"name": "senior", "kind": "categorical"},
    ],
    label={"name": "Churn", "classes": ["No", "Yes"], "mapping": {"yes": "Yes", "1": "Yes", "no": "No", "0": "No"}},
)
HOUSING = model_spec(features=["sqft", "bedrooms"], label="price", task="regression")


def churn(uuid, at, pred, label=None, **features):
    feats = {"tenure": 12.0, "contract": "month-to-month", "senior": "0", **features}
    return prediction(uuid, T0 + at, pred, label=label, features=feats)


def churn_records() -> list[dict]:
    return [
        churn("a", 1, "Yes", label="Yes"),
        churn("b", 2, "No", label="yes"),  # mapped
        churn("c", 3, "No", label=1),  # a number's text is mapped too
        churn("d", 4, "Yes", label="maybe"),  # names no class: bad label
        churn("e", 5, "Perhaps", label="No"),  # a prediction that names no class: -1
        churn("f", 6, "No", contract=None),  # missing: kept as None
        churn("g", 7, "No", label="No", senior=1),  # a number in a categorical feature: its text
        churn("h", 8, "No", label="No", contract={"a": 1}),  # unreadable: non_finite
        churn("i", 9, "No", label="No", tenure="n/a"),  # text in a numeric feature: non_finite
        churn("j", 10, ["Yes"], label=["No"]),  # MLflow-style one-element lists
    ]


def test_categorical_features_are_text_and_labels_go_through_the_mapping():
    cols = records_to_columns(churn_records(), CHURN)
    assert cols.classes == ("No", "Yes") and cols.positive == 1 and cols.is_classifier
    assert cols.feature_names == ("tenure",) and list(cols.categories) == ["contract", "senior"]
    np.testing.assert_array_equal(cols.prediction, [1, 0, 0, 1, -1, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(cols.label, [1, 1, 1, NAN, 0, NAN, 0, 0, 0, 0])
    assert (
        cols.categories["contract"].tolist()
        == ["month-to-month"] * 5 + [None, "month-to-month", None] + ["month-to-month"] * 2
    )
    assert cols.categories["senior"].tolist()[6] == "1"
    assert np.isnan(cols.features[8, 0])
    assert cols.unreadable.tolist() == [False] * 7 + [True, True, False]
    assert cols.counts["bad_label"] == 1 and cols.counts["non_finite"] == 2 and cols.counts["missing_features"] == 1
    assert cols.counts["bad_prediction"] == 0 and cols.counts["missing_prediction"] == 0


def test_the_block_path_reads_text_categories_as_the_general_path(monkeypatch):
    recs = [
        churn(f"u{i}", i, ["No", "Yes"][i % 2], label=["no", "Yes", None][i % 3], contract=["one", None][i % 2])
        for i in range(50)
    ]
    numeric = model_spec(features=[{"name": "tenure"}, {"name": "contract", "kind": "categorical"}, {"name": "senior"}])
    for r in recs:  # numbers only where numbers are read: the block path
        r["metrics"]["prediction"] = 1 if r["metrics"]["prediction"] == "Yes" else 0
        r["metrics"]["final_label"] = {"no": 0, "Yes": 1, None: None}[r["metrics"].get("final_label")]
        r["metrics"]["input_features"]["senior"] = 0.0
    seen = []
    real = decode.well_formed_rows
    monkeypatch.setattr(decode, "well_formed_rows", lambda *a: seen.append(real(*a)) or seen[-1])
    fast = records_to_columns(recs, numeric)
    assert seen[-1] is not None  # took the block path
    monkeypatch.setattr(decode, "well_formed_rows", lambda *a: None)
    general = records_to_columns(recs, numeric)
    assert fast.categories["contract"].tolist() == general.categories["contract"].tolist()
    assert fast.categories["contract"].tolist()[:2] == ["one", None]
    for name in ("prediction", "label", "features", "latency_ms"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(general, name), err_msg=name)
    assert fast.counts == general.counts and fast.counts["missing_features"] == 25


def test_multiclass_int_classes_read_numbers_and_text_and_a_probability_matrix():
    spec = model_spec(features=["x"], label={"name": "y", "classes": [1, 2, 3]})
    recs = [
        prediction("a", T0 + 1, 2, label="3", features={"x": 1}),
        prediction("b", T0 + 2, 1.0, label=2.0, features={"x": 1}),
        prediction("c", T0 + 3, 3, label=4, features={"x": 1}),  # 4 is no class: bad label
        prediction("d", T0 + 4, 7, label=1, features={"x": 1}),  # 7 is no class: prediction -1
    ]
    for r, probs in zip(recs, [{"1": 0.2, "2": 0.5, "3": 0.3}, {"1": 0.7, "2": 0.2, "3": 0.1}, None, {"2": 1.0}]):
        r["metrics"].pop("probability")
        if probs is not None:
            r["metrics"]["probabilities"] = probs
    cols = records_to_columns(recs, spec)
    np.testing.assert_array_equal(cols.prediction, [1, 0, 2, -1])
    np.testing.assert_array_equal(cols.label, [2, 1, NAN, 0])
    assert cols.positive is None and cols.counts["bad_label"] == 1
    np.testing.assert_array_equal(cols.proba, [[0.2, 0.5, 0.3], [0.7, 0.2, 0.1], [NAN, NAN, NAN], [NAN, 1.0, NAN]])


def test_binary_probability_or_the_positive_class_of_probabilities():
    recs = [prediction("a", T0, 1, label=1), prediction("b", T0 + 1, 0, label=0)]
    assert records_to_columns(recs, model_spec()).proba.tolist() == [0.4, 0.4]  # support's "probability"
    for r, p in zip(recs, (0.9, 0.2)):
        r["metrics"].pop("probability")
        r["metrics"]["probabilities"] = {"0": 1 - p, "1": p}
    np.testing.assert_allclose(records_to_columns(recs, model_spec()).proba, [0.9, 0.2])
    for r in recs:
        r["metrics"].pop("probabilities")
    assert records_to_columns(recs, model_spec()).proba is None


def test_regression_reads_numbers_and_only_truly_bad_values_are_bad():
    recs = [
        prediction("a", T0 + 1, 310_000.5, label=299_999.25, features={"sqft": 1180, "bedrooms": 3}),
        prediction("b", T0 + 2, [250_000], label="412000.0", features={"sqft": 2570, "bedrooms": 3}),
        prediction("c", T0 + 3, 500_000, label="n/a", features={"sqft": 770, "bedrooms": 2}),
        prediction("d", T0 + 4, "high", label=math.inf, features={"sqft": 1960, "bedrooms": 4}),
        prediction("e", T0 + 5, 180_000, features={"sqft": 1680, "bedrooms": 3}),
    ]
    cols = records_to_columns(recs, HOUSING)
    assert cols.classes == () and not cols.is_classifier and cols.positive is None and cols.proba is None
    np.testing.assert_array_equal(cols.prediction, [310_000.5, 250_000, 500_000, NAN, 180_000])
    np.testing.assert_array_equal(cols.label, [299_999.25, 412_000, NAN, NAN, NAN])
    assert cols.counts["bad_label"] == 2 and cols.counts["bad_prediction"] == 1
    frame = cols.training_frame(HOUSING)
    assert frame.columns.tolist() == ["sqft", "bedrooms", "price", "start_ms"]
    assert frame["price"].dtype == np.float64 and frame["price"].tolist() == [299_999.25, 412_000.0]


def test_training_frame_types_each_feature_by_its_kind_and_labels_by_class():
    cols = records_to_columns(churn_records(), CHURN)
    frame = cols.training_frame(CHURN)
    assert frame.columns.tolist() == ["tenure", "contract", "senior", "Churn", "start_ms"]
    assert frame["tenure"].dtype == np.float64 and frame["contract"].dtype == object
    # a: labelled; b, c: mapped; d: bad label; e: labelled (its prediction names no class, still a prediction);
    # f: unlabelled; g: labelled; h, i: unreadable feature, dropped; j: labelled
    assert frame["start_ms"].tolist() == [T0 + t for t in (1, 2, 3, 5, 7, 10)]
    assert frame["Churn"].tolist() == ["Yes", "Yes", "Yes", "No", "No", "No"]
    assert frame["senior"].tolist() == ["0", "0", "0", "0", "1", "0"]
    int_labels = records_to_columns([prediction("a", T0, 1, label=1)], model_spec()).training_frame(model_spec())
    assert int_labels["final_label"].dtype == np.int64


def test_training_frame_keeps_missing_values_for_imputation():
    recs = [
        churn("a", 1, "No", label="No", contract=None),
        churn("b", 2, "No", label="No", tenure=None),
    ]
    frame = records_to_columns(recs, CHURN).training_frame(CHURN)
    assert frame["contract"].tolist() == [None, "month-to-month"]
    assert math.isnan(frame["tenure"].tolist()[1])


def test_training_frame_names_a_feature_the_records_lack():
    cols = records_to_columns(churn_records(), ["tenure"])
    with pytest.raises(DataError, match="lack contract, senior"):
        cols.training_frame(CHURN)


def test_decode_dump_follows_the_spec_like_records_to_columns():
    recs = churn_records()
    body = json.dumps({"metrics": recs}).encode()
    got, want = decode_dump(body, CHURN), records_to_columns(json.loads(body)["metrics"], CHURN)
    for name in ("prediction", "label", "features", "latency_ms", "start_ms"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert got.categories["contract"].tolist() == want.categories["contract"].tolist()
    assert got.counts == want.counts and got.classes == ("No", "Yes")


def test_decode_dump_fast_path_with_text_classes_and_categories(monkeypatch):
    from monitoring.domain.records import dumps

    recs = [churn(f"u{i}", i, ["No", "Yes"][i % 2], label=["No", "yes"][i % 3 % 2]) for i in range(40)]
    body = json.dumps({"metrics": recs}).encode()
    monkeypatch.setattr(dumps, "records_to_columns", lambda *a, **k: pytest.fail("took the general path"))
    got = decode_dump(body, CHURN)
    want = records_to_columns(recs, CHURN)
    np.testing.assert_array_equal(got.label, want.label)
    np.testing.assert_array_equal(got.prediction, want.prediction)
    assert got.categories["senior"].tolist() == ["0"] * 40


def test_inferred_feature_names_with_categorical_kinds_and_discovered_text_classes():
    recs = [r for r in churn_records() if r["predictionUuid"] != "c"]  # c's label is a number
    body = json.dumps({"metrics": recs}).encode()
    reading = Reading((), ("contract",), "classification", None)
    got = decode_dump(body, reading, infer_features=True, discover_classes=True)
    assert got.feature_names == ("senior", "tenure") and list(got.categories) == ["contract"]
    assert got.classes == ("No", "Perhaps", "Yes", "maybe", "yes")  # no mapping: every text is a class
    assert decode_dump(json.dumps({"metrics": churn_records()}).encode(), reading, discover_classes=True).classes == (
        0,
        1,
    )  # a number among them: the classes are numbers, and the texts bad labels
    assert discover_classes(np.array([0.0, 2.0, NAN]), [1, None]) == [0, 1, 2]
    assert discover_classes(np.array([1.0, NAN])) == [0, 1]


def test_classes_written_alike_are_refused_and_numbers_have_one_text():
    with pytest.raises(DataError, match="written alike"):
        Reading.of(model_spec(label={"name": "y", "classes": [1, "1"]}))
    assert [number_text(v) for v in (3.0, 3, -0.0, 2.5, 1e20)] == ["3", "3", "0", "2.5", "1e+20"]
