"""Reference statistics: quantile bins, PSI, KS against a brute-force computation, JSON round trip."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from monitoring.core.errors import DataError
from monitoring.domain.metrics.drift import MAX_SAMPLE, N_BINS, ReferenceStats, ks_statistic


def brute_force_ks(a: np.ndarray, b: np.ndarray) -> float:
    points = np.concatenate([a, b])
    return max(abs(np.mean(a <= x) - np.mean(b <= x)) for x in points)


@pytest.fixture(scope="module")
def reference() -> ReferenceStats:
    rng = np.random.default_rng(11)
    frame = pd.DataFrame({"x": rng.normal(10, 2, 5000), "load": rng.uniform(0, 100, 5000)})
    return ReferenceStats.fit(frame, ["x", "load"])


def test_fit_makes_ten_quantile_bins_and_a_bounded_sorted_sample(reference):
    x = reference.features["x"]
    assert x.edges.size == N_BINS - 1 and x.expected.size == N_BINS
    np.testing.assert_allclose(x.expected, np.full(N_BINS, 0.1))
    assert x.sample.size == MAX_SAMPLE and np.all(np.diff(x.sample) >= 0)
    assert x.n == 5000 and abs(x.mean - 10) < 0.1 and abs(x.std - 2) < 0.1


def test_psi_is_near_zero_on_the_same_distribution_and_large_when_shifted(reference):
    rng = np.random.default_rng(12)
    assert reference.psi("x", rng.normal(10, 2, 5000)) < 0.01
    assert reference.psi("x", rng.normal(11.5, 2, 5000)) > 0.25
    assert reference.psi("load", rng.uniform(0, 100, 5000)) < 0.01


def test_psi_exact_value_with_an_empty_bin():
    ref = ReferenceStats.fit(pd.DataFrame({"v": np.arange(100, dtype=float)}), ["v"])
    # every current value falls in the top bin: nine bins at epsilon, one at 1.0 against 0.1 each
    value = ref.psi("v", np.full(50, 99.0))
    expected = 9 * (1e-4 - 0.1) * np.log(1e-4 / 0.1) + (1.0 - 0.1) * np.log(1.0 / 0.1)
    assert value == pytest.approx(expected, rel=1e-12)


def test_psi_ignores_non_finite_values(reference):
    rng = np.random.default_rng(13)
    values = rng.normal(10, 2, 1000)
    with_nan = np.concatenate([values, [np.nan, np.inf]])
    assert reference.psi("x", with_nan) == reference.psi("x", values)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_ks_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    a = np.sort(np.round(rng.normal(0, 1, 300), 1))  # rounding makes ties on both sides
    b = np.round(rng.normal(0.3, 1.2, 200), 1)
    assert ks_statistic(a, b) == pytest.approx(brute_force_ks(a, b), abs=1e-12)


def test_ks_method_uses_the_reference_sample(reference):
    rng = np.random.default_rng(14)
    same, shifted = rng.normal(10, 2, 2000), rng.normal(12, 2, 2000)
    assert reference.ks("x", same) < 0.05
    assert reference.ks("x", shifted) == pytest.approx(brute_force_ks(reference.features["x"].sample, shifted))
    assert reference.ks("x", shifted) > 0.3


def test_round_trip_through_json(reference):
    text = json.dumps(reference.to_dict(), allow_nan=False)
    again = ReferenceStats.from_dict(json.loads(text))
    values = np.random.default_rng(15).normal(10.5, 2, 700)
    assert again.psi("x", values) == reference.psi("x", values)
    assert again.ks("x", values) == reference.ks("x", values)
    assert again.features["load"].mean == reference.features["load"].mean


def test_constant_feature_gets_fewer_bins():
    ref = ReferenceStats.fit(pd.DataFrame({"c": np.full(100, 3.0)}), ["c"])
    assert ref.features["c"].expected.size == 2
    assert ref.psi("c", np.full(10, 3.0)) == 0.0


def test_errors_name_the_feature(reference):
    with pytest.raises(DataError, match="no reference statistics for feature 'nope'"):
        reference.psi("nope", np.ones(3))
    with pytest.raises(DataError, match="feature 'x': no finite values"):
        reference.ks("x", np.array([np.nan]))
    with pytest.raises(DataError, match="reference data has no column 'y'"):
        ReferenceStats.fit(pd.DataFrame({"x": [1.0]}), ["y"])
    bad = reference.to_dict()
    del bad["features"]["load"]["sample"]
    with pytest.raises(DataError, match="feature 'load': missing or malformed 'sample'"):
        ReferenceStats.from_dict(bad)
    with pytest.raises(DataError, match="expected a mapping with a 'features' mapping"):
        ReferenceStats.from_dict({"x": 1})
