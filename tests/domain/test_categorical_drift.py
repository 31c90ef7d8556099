"""Categorical references: top-K / other / unseen buckets, PSI and Jensen-Shannon drift, kinds in ReferenceStats."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from monitoring.core.errors import DataError
from monitoring.domain.metrics import categories
from monitoring.domain.metrics.categories import OTHER, UNSEEN, CategoricalReference
from monitoring.domain.metrics.drift import FORMAT_VERSION, PSI_EPSILON, ReferenceStats
from monitoring.domain.records.values import category_labels

PLANS = ["month-to-month", "one year", "two year"]


def churn_frame(seed: int = 1, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "tenure": rng.integers(0, 72, n).astype(float),
            "contract": rng.choice(PLANS, n, p=[0.55, 0.25, 0.2]),
            "payment": rng.choice(["card", "check", "transfer", None], n, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )


@pytest.fixture(scope="module")
def reference() -> ReferenceStats:
    return ReferenceStats.fit(
        churn_frame(), ["tenure", "contract", "payment"], kinds={"contract": "categorical", "payment": "categorical"}
    )


def test_fit_keeps_the_most_frequent_categories_then_other_and_unseen():
    values = ["a"] * 50 + ["b"] * 30 + ["c"] * 10 + ["d"] * 6 + ["e"] * 4
    ref = CategoricalReference.fit(values, "col", top_k=3)
    assert ref.categories == ("a", "b", "c")
    assert ref.buckets == ("a", "b", "c", OTHER, UNSEEN)
    np.testing.assert_allclose(ref.expected, [0.5, 0.3, 0.1, 0.1, 0.0])
    assert ref.tail == {"d", "e"} and not ref.open_tail and ref.n == 100
    assert ref.bucket_index(["b", "e", "z", None]).tolist() == [1, 3, 4, -1]


def test_ties_are_ordered_by_name_so_the_fit_is_deterministic():
    assert CategoricalReference.fit(["y", "x", "y", "x", "z"], "col", top_k=2).categories == ("x", "y")


def test_numbers_as_categories_read_the_same_from_json_and_csv():
    labels, missing = category_labels(np.array([3.0, 3, 2.5, np.nan], dtype=object))
    assert labels[:3].tolist() == ["3", "3", "2.5"] and missing.tolist() == [False, False, False, True]
    ref = CategoricalReference.fit(np.array([1, 2, 2, 3]), "col")
    assert ref.bucket_index(np.array([2.0, 1.0, 7.0])).tolist() == [0, 1, len(ref.categories) + 1]


def test_a_tail_longer_than_remembered_sends_unknown_values_to_other(monkeypatch):
    monkeypatch.setattr(categories, "MAX_TAIL", 2)
    ref = CategoricalReference.fit(["a"] * 5 + ["b", "c", "d"], "col", top_k=1)
    assert ref.open_tail and len(ref.tail) == 2
    assert ref.bucket_index(["zzz"]).tolist() == [1]  # could be the forgotten tail category: "other"


def test_psi_is_near_zero_on_the_same_distribution_and_large_when_shifted(reference):
    rng = np.random.default_rng(2)
    assert reference.psi("contract", rng.choice(PLANS, 2000, p=[0.55, 0.25, 0.2])) < 0.01
    assert reference.psi("contract", rng.choice(PLANS, 2000, p=[0.2, 0.3, 0.5])) > 0.25


def test_psi_exact_value_with_an_unseen_category():
    ref = CategoricalReference.fit(["a"] * 60 + ["b"] * 40, "col")
    stats = ReferenceStats({"f": ref})
    value = stats.psi("f", ["a"] * 50 + ["new"] * 50)
    # buckets a, b, other, unseen: actual 0.5, eps, eps, 0.5 against 0.6, 0.4, eps, eps
    eps = PSI_EPSILON
    expected = (0.5 - 0.6) * math.log(0.5 / 0.6) + (eps - 0.4) * math.log(eps / 0.4) + (0.5 - eps) * math.log(0.5 / eps)
    assert value == pytest.approx(expected, rel=1e-12)


def test_js_distance_matches_scipy_and_spans_zero_to_one(reference):
    rng = np.random.default_rng(3)
    current = rng.choice(PLANS + ["brand-new plan"], 1500, p=[0.3, 0.3, 0.3, 0.1])
    ref = reference.features["contract"]
    counts = ref.bucket_counts(current)[0]
    assert reference.js("contract", current) == pytest.approx(
        jensenshannon(counts / counts.sum(), ref.expected, base=2), abs=1e-12
    )
    same = CategoricalReference.fit(["a", "b"] * 10, "col")
    assert ReferenceStats({"f": same}).js("f", ["b", "a"] * 7) == pytest.approx(0.0, abs=1e-12)
    assert ReferenceStats({"f": same}).js("f", ["x", "y"]) == pytest.approx(1.0)  # all unseen: disjoint


def test_missing_values_are_ignored(reference):
    values = np.array(["card", "check", "card", "transfer"] * 50, dtype=object)
    with_missing = np.concatenate([values, [None, np.nan, pd.NA]])
    assert reference.psi("payment", with_missing) == reference.psi("payment", values)
    assert reference.features["payment"].n < 3000  # the None rows were left out of the fit too


def test_bucket_counts_per_group_equal_each_group_alone(reference):
    rng = np.random.default_rng(4)
    values = rng.choice(PLANS + ["other plan"], 900)
    group = rng.integers(0, 4, 900)
    ref = reference.features["contract"]
    table = ref.bucket_counts(values, group, 4)
    for g in range(4):
        assert table[g].tolist() == ref.bucket_counts(values[group == g])[0].tolist()


def test_drift_gives_the_measures_of_each_kind(reference):
    rng = np.random.default_rng(5)
    assert set(reference.drift("tenure", rng.integers(0, 72, 500).astype(float))) == {"psi", "ks"}
    assert set(reference.drift("contract", rng.choice(PLANS, 500))) == {"psi", "js"}
    assert reference.kinds == {"tenure": "numeric", "contract": "categorical", "payment": "categorical"}


def test_measures_of_the_other_kind_are_refused_by_name(reference):
    with pytest.raises(DataError, match="feature 'contract' is categorical: KS applies to numeric features only"):
        reference.ks("contract", np.array(["one year"]))
    with pytest.raises(DataError, match="feature 'tenure' is numeric: Jensen-Shannon distance applies"):
        reference.js("tenure", np.ones(3))
    with pytest.raises(DataError, match="feature 'contract': no values to compare"):
        reference.psi("contract", [None, None])


def test_text_in_a_numeric_feature_names_the_feature_and_row():
    frame = churn_frame()
    frame["tenure"] = frame["tenure"].astype(object)
    frame.loc[7, "tenure"] = "twelve"
    with pytest.raises(DataError, match=r"reference column 'tenure': expected numbers .* found 'twelve' \(row 7"):
        ReferenceStats.fit(frame, ["tenure"])
    with pytest.raises(
        DataError, match="reference column 'contract': expected numbers .*declare the feature categorical"
    ):
        ReferenceStats.fit(frame, ["contract"])


def test_numbers_stored_as_text_still_fit_as_numeric():
    frame = pd.DataFrame({"x": ["1.5", "2", None, "3"]})
    ref = ReferenceStats.fit(frame, ["x"])
    assert ref.features["x"].n == 3 and ref.features["x"].mean == pytest.approx(6.5 / 3)


def test_kind_errors():
    frame = churn_frame()
    with pytest.raises(DataError, match="feature 'contract': unknown kind 'text'"):
        ReferenceStats.fit(frame, ["contract"], kinds={"contract": "text"})
    with pytest.raises(DataError, match="feature kinds given for features not described: plan"):
        ReferenceStats.fit(frame, ["contract"], kinds={"plan": "categorical"})
    with pytest.raises(DataError, match="reference column 'payment': no values"):
        ReferenceStats.fit(pd.DataFrame({"payment": [None, None]}), ["payment"], kinds={"payment": "categorical"})


def test_round_trip_of_both_kinds_through_json(reference):
    data = json.loads(json.dumps(reference.to_dict(), allow_nan=False))
    assert data["format"] == FORMAT_VERSION == 2
    again = ReferenceStats.from_dict(data)
    rng = np.random.default_rng(6)
    plans, tenure = rng.choice(PLANS + ["x"], 400), rng.normal(30, 10, 400)
    assert again.drift("contract", plans) == reference.drift("contract", plans)
    assert again.drift("tenure", tenure) == reference.drift("tenure", tenure)
    assert again.kinds == reference.kinds


def test_version_1_files_still_read():
    numeric_only = ReferenceStats.fit(churn_frame(), ["tenure"])
    v1 = numeric_only.to_dict()
    v1["format"] = 1
    for item in v1["features"].values():
        del item["kind"]  # version 1 had no kinds
    again = ReferenceStats.from_dict(v1)
    values = np.random.default_rng(7).normal(30, 10, 300)
    assert again.psi("tenure", values) == numeric_only.psi("tenure", values)


def test_newer_formats_and_bad_categorical_entries_are_refused(reference):
    data = reference.to_dict()
    with pytest.raises(DataError, match="format 3 is not one this version reads \\(1 to 2\\)"):
        ReferenceStats.from_dict({**data, "format": 3})
    v1_with_categories = {**data, "format": 1}
    with pytest.raises(DataError, match="feature 'contract': unknown kind 'categorical'"):
        ReferenceStats.from_dict(v1_with_categories)
    broken = json.loads(json.dumps(data))
    broken["features"]["contract"]["expected"] = [1.0]
    with pytest.raises(DataError, match="feature 'contract': inconsistent categories/expected"):
        ReferenceStats.from_dict(broken)
    broken = json.loads(json.dumps(data))
    del broken["features"]["payment"]["tail"]
    with pytest.raises(DataError, match="feature 'payment': missing or malformed 'tail'"):
        ReferenceStats.from_dict(broken)
