"""Slices: per-slice metrics with bounds, judged against the reference; a slice that degrades alone is flagged,
many stable slices raise no false alarm (Benjamini-Hochberg)."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.config.slices import SliceBy
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.slices.judge import benjamini_hochberg, findings
from monitoring.domain.slices.members import assign
from monitoring.domain.slices.model import Slicing, stats_of_rows
from monitoring.domain.windows.compute import compute_windows
from tests.domain.support import T0, model_spec, prediction

HOUR = 3_600_000
REGIONS = [f"r{i:02d}" for i in range(24)]
SPEC = model_spec(features=[{"name": "region", "kind": "categorical"}, {"name": "age"}])
CUTS = (SliceBy(feature="region"), SliceBy(feature="age", bins=[30, 50]))


def rows(rng, n, bad_region=None, bad_accuracy=0.6):
    """Rows of 24 regions, each right 85% of the time (``bad_region``: ``bad_accuracy``)."""
    region = rng.choice(REGIONS, n)
    age = rng.uniform(18, 80, n)
    y_true = rng.integers(0, 2, n)
    right = rng.random(n) < np.where(region == bad_region, bad_accuracy, 0.85)
    return region, age, np.where(right, y_true, 1 - y_true), y_true


def reference(rng, n=24_000) -> dict:
    region, age, y_pred, y_true = rows(rng, n)
    return stats_of_rows(CUTS, {"age": age}, {"region": region}, y_pred=y_pred, y_true=y_true, positive=1)


def window(rng, slicing, n=12_000, **bad):
    region, age, y_pred, y_true = rows(rng, n, **bad)
    recs = [
        prediction(
            f"s{i}",
            T0 + i * 100,
            int(y_pred[i]),
            label=int(y_true[i]),
            features={"region": str(region[i]), "age": float(age[i])},
        )
        for i in range(n)
    ]
    (w,) = compute_windows(records_to_columns(recs, SPEC), HOUR * 24, slicing=slicing)
    return w


def judged(w, fdr=0.05, tolerance=0.02):
    return benjamini_hochberg(findings(w.slices, ("accuracy", "recall", "precision"), 50, tolerance), fdr)


def test_bins_and_values_name_their_slices():
    names, index = assign(SliceBy(feature="age", bins=[30, 50]), np.array([10.0, 30.0, 49.9, 50.0, np.nan]))
    assert names == ["age<30", "age 30..50", "age>=50"] and index.tolist() == [0, 1, 1, 2, -1]
    names, index = assign(
        SliceBy(feature="plan", values=["gold", "basic"]), np.array(["basic", None, "x"], dtype=object)
    )
    assert names == ["plan=gold", "plan=basic"] and index.tolist() == [1, -1, -1]


def test_every_slice_gets_its_metrics_with_bounds():
    rng = np.random.default_rng(1)
    slicing = Slicing(CUTS, 50, reference(rng))
    w = window(rng, slicing)
    assert len(w.slices) == 24 + 3
    item = w.slices["region=r03"]
    acc = item["metrics"]["accuracy"]
    assert acc["low"] < acc["value"] < acc["high"] and item["stats"]["labelled"] == item["stats"]["rows"]
    assert acc["value"] == pytest.approx(item["stats"]["correct"] / item["stats"]["labelled"])
    assert item["ref"]["labelled"] > 500


def test_a_slice_that_degrades_alone_is_flagged_first():
    rng = np.random.default_rng(2)
    slicing = Slicing(CUTS, 50, reference(rng))
    found = judged(window(rng, slicing, bad_region="r07", bad_accuracy=0.65))
    flagged = [f for f in found if f.flagged]
    assert flagged and flagged[0].slice == "region=r07" and flagged[0].metric == "accuracy"
    assert {f.slice for f in flagged} == {"region=r07"}
    assert flagged[0].value < 0.7 < 0.8 < flagged[0].reference


@pytest.mark.parametrize("seed", range(10, 30))
def test_many_stable_slices_raise_no_false_alarm(seed):
    """27 slices x 3 metrics, 20 seeds: with BH at 0.05 not one flag; a raw p < 0.05 would flag some."""
    rng = np.random.default_rng(seed)
    slicing = Slicing(CUTS, 50, reference(rng))
    found = judged(window(rng, slicing))
    assert len(found) == 27 * 3
    assert [f for f in found if f.flagged] == []


def test_without_correction_stable_slices_would_raise_alarms():
    """Why the correction: across 20 seeded stable windows tested with no tolerance, raw p-values below 0.05 happen."""
    raw, flagged = 0, 0
    for seed in range(10, 30):
        rng = np.random.default_rng(seed)
        slicing = Slicing(CUTS, 50, reference(rng))
        found = judged(window(rng, slicing), tolerance=0.0)
        raw += sum(f.p < 0.05 for f in found)
        flagged += sum(f.flagged for f in found)
    assert raw > 40 and flagged <= 3  # 87 raw p < 0.05 of 1,620 tests; BH: 2 flags (at most one window in 20 expected)


def test_benjamini_hochberg_q_values():
    from monitoring.domain.slices.judge import Finding

    ps = [0.01, 0.04, 0.03, 0.005]
    out = benjamini_hochberg([Finding(f"s{i}", "accuracy", 0.5, 0.6, 100, p) for i, p in enumerate(ps)], 0.05)
    assert [f.p for f in out] == [0.005, 0.01, 0.03, 0.04]
    assert [round(f.q, 4) for f in out] == [0.02, 0.02, 0.04, 0.04] and all(f.flagged for f in out)


def test_a_slices_policy_fails_naming_the_degraded_slice_and_warns_it_ranked():
    from monitoring.config.pipeline import SlicesPolicy
    from monitoring.domain.decisions.policy_warnings import ranked_warnings, warnings_text
    from monitoring.domain.decisions.thresholds import evaluate_window

    rng = np.random.default_rng(5)
    slicing = Slicing(CUTS, 50, reference(rng))
    w = window(rng, slicing, bad_region="r11", bad_accuracy=0.6)
    policy = SlicesPolicy(kind="slices")
    (result,) = evaluate_window(w, [policy])
    assert (result.status, result.kind, result.action, result.metric) == ("fail", "slices", "warn", "accuracy")
    assert "1 of 27 slice metrics worse than at training: region=r11 accuracy 0.6" in result.reason
    text = warnings_text(ranked_warnings(w, [policy], [result]))
    assert text.startswith("region=r11 accuracy 0.6") and " < 0.85" in text
    (calm,) = evaluate_window(window(rng, slicing), [policy])
    assert calm.status == "pass" and "27 slice metrics judged, none worse" in calm.reason


def test_slices_are_judged_only_with_their_reference_and_enough_rows():
    from monitoring.config.pipeline import SlicesPolicy
    from monitoring.domain.decisions.thresholds import evaluate_window

    rng = np.random.default_rng(6)
    w = window(rng, Slicing(CUTS, 50, {}))  # a version saved before the slices were configured
    assert w.slices["region=r01"]["ref"] is None
    (result,) = evaluate_window(w, [SlicesPolicy(kind="slices")])
    assert result.status == "insufficient" and "no slice with enough labelled rows" in result.reason
    few = window(rng, Slicing(CUTS, 20_000, reference(rng)))
    assert evaluate_window(few, [SlicesPolicy(kind="slices")])[0].status == "insufficient"


def test_the_slices_config_is_checked_against_the_model():
    from monitoring.config.pipeline import parse_config
    from monitoring.core.errors import ConfigError

    base = {
        "model": {"name": "m", "features": ["age", {"name": "region", "kind": "categorical"}], "label": "y"},
        "thresholds": {"policies": [{"kind": "slices"}]},
    }
    with pytest.raises(ConfigError, match="a slices policy needs the slices section"):
        parse_config(base)
    base["slices"] = {"by": [{"feature": "age"}, {"feature": "region", "bins": [1, 2]}, {"feature": "zip"}]}
    with pytest.raises(ConfigError) as err:
        parse_config(base)
    text = str(err.value)
    assert "slices.by[0].bins: 'age' is numeric" in text and "slices.by[1].bins: 'region' is categorical" in text
    assert "slices.by[2].feature: 'zip' is not a model feature" in text
    base["slices"] = {"by": [{"feature": "age", "bins": [30, 20]}]}
    with pytest.raises(ConfigError, match="bins must be one or more increasing numbers"):
        parse_config(base)
    base["slices"] = {"by": [{"feature": "age", "bins": [30, 50]}], "min_rows": 80}
    base["thresholds"]["policies"] = [{"kind": "slices", "metrics": ["mae"]}]
    with pytest.raises(ConfigError, match=r"thresholds\.policies\[0\]\.metrics"):
        parse_config(base)
