"""Joining ground truth to predictions: keys from records, newest or oldest per key, labels through the spec."""

from __future__ import annotations

from monitoring.config.model_spec import ModelConfig
from monitoring.domain.data.label_join import MISSES, PredictionIndex, Tally, label_reader, record_key


def record(uuid: str, start: int, **metrics) -> dict:
    return {"predictionUuid": uuid, "startTimeStampMs": start, "metrics": metrics}


def test_keys_come_from_the_tracked_metric_then_the_features_as_text():
    assert record_key(record("u1", 0, customer_id=1042), "customer_id", "input_features") == "1042"
    assert record_key(record("u1", 0, customer_id=1042.0), "customer_id", "input_features") == "1042"
    tracked_as_feature = record("u2", 0, input_features={"customer_id": "C-7"})
    assert record_key(tracked_as_feature, "customer_id", "input_features") == "C-7"
    assert record_key(record("u3", 0), "customer_id", "input_features") is None
    assert record_key(record("u4", 0), "uuid", "input_features") == "u4"
    assert record_key({"predictionUuid": "", "metrics": {}}, "uuid", "input_features") is None


def test_a_label_joins_the_newest_or_oldest_prediction_made_before_its_outcome_never_a_later_one():
    chunk = [record("a1", 10, k="A"), record("a2", 30, k="A"), record("a0", 20, k="A"), record("b", 5, k="B")]
    chunk.append({"predictionUuid": "", "startTimeStampMs": 0, "metrics": {"accuracy": 1.0}})  # an aggregate
    newest, oldest = PredictionIndex("k", "input_features"), PredictionIndex("k", "input_features", "oldest")
    for index in (newest, oldest):
        index.add(chunk[:2], "crn-1")
        index.add(chunk[2:], "crn-2")
        index.add([record("old", 1, k="C")], "crn-0", stale=True)
    assert newest.find("A", 100)[0].uuid == "a2" and oldest.find("A", 100)[0].uuid == "a1"
    assert newest.find("A", 100)[0].deployment_crn == "crn-1" and newest.records == 5 and newest.predictions == 4
    # issue 20: an outcome at 25 belongs to the prediction at 20, not to the one made after it at 30
    assert newest.find("A", 25)[0].uuid == "a0" and newest.find("A", 20)[0].uuid == "a0"
    assert oldest.find("A", 15)[0].uuid == "a1"
    assert newest.find("A", 9) == (None, "before_prediction")  # every prediction of A is later
    assert newest.find("C", 100) == (None, "too_old") and newest.find("Z", 100) == (None, "unknown_key")


def test_a_row_that_names_its_prediction_joins_it_whatever_its_time():
    index = PredictionIndex("uuid", "input_features")
    index.add([record("u1", 50)], "crn-1")
    assert index.find("u1", 10)[0].uuid == "u1" and index.find("u2", 10) == (None, "unknown_key")


def test_labels_map_through_the_spec_and_anything_else_is_unmappable():
    spec = ModelConfig(
        name="m",
        features=["x"],
        label={"name": "y", "classes": ["No", "Yes"], "mapping": {"yes": "Yes", "no": "No", "1": "Yes"}},
    )
    read = label_reader(spec)
    assert [read(v) for v in ("yes", "Yes", 1, 1.0, "No", "maybe", None, float("nan"))] == [
        "Yes",
        "Yes",
        "Yes",
        "Yes",
        "No",
        None,
        None,
        None,
    ]
    numbers = label_reader(ModelConfig(name="m", task="regression", features=["x"], label="price"))
    assert [numbers(v) for v in ("350000.5", 12, "n/a", float("inf"))] == [350000.5, 12.0, None, None]
    ints = label_reader(ModelConfig(name="m", features=["x"], label="y"))
    assert [ints(v) for v in ("1", 0, "1.0", "2")] == [1, 0, 1, None]


def test_the_tally_counts_every_miss_and_keeps_only_a_few_samples():
    tally = Tally(samples=2)
    for i in range(5):
        tally.miss("unknown_key", f"row {i}", key=f"K{i}")
    tally.count("posted", 7)
    report = tally.report()
    assert report["counts"]["unknown_key"] == 5 and report["counts"]["posted"] == 7
    assert [s["where"] for s in report["misses"]["unknown_key"]["samples"]] == ["row 0", "row 1"]
    assert set(report["misses"]) == set(MISSES) and tally.missed() == 5
