"""Multivariate drift: a joint shift no single feature shows is caught by the domain classifier; data quality per window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.multivariate.classifier import JointReference
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.windows.compute import compute_windows
from tests.domain.support import T0, model_spec, prediction

HOUR = 3_600_000
SPEC = model_spec(features=["x1", "x2", "x3", {"name": "plan", "kind": "categorical"}])


def signals(rng, n, correlation):
    x1 = rng.normal(0, 1, n)
    x2 = correlation * x1 + np.sqrt(1 - correlation**2) * rng.normal(0, 1, n)
    return x1, x2, rng.normal(0, 1, n), rng.choice(["basic", "gold"], n)


def references(rng):
    x1, x2, x3, plan = signals(rng, 5000, 0.8)
    frame = pd.DataFrame({"x1": x1, "x2": x2, "x3": x3, "plan": plan})
    stats = ReferenceStats.fit(frame, ["x1", "x2", "x3", "plan"], kinds={"plan": "categorical"})
    joint = JointReference.from_dict(JointReference.fit({"x1": x1, "x2": x2, "x3": x3}, {"plan": plan}, 1).to_dict())
    return stats, joint


def window(rng, stats, joint, correlation, n=3000, plan=None, missing=0.0):
    x1, x2, x3, plans = signals(rng, n, correlation)
    if plan is not None:
        plans = np.where(rng.random(n) < 0.3, plan, plans)
    recs = []
    for i in range(n):
        features = {"x1": float(x1[i]), "x2": None if rng.random() < missing else float(x2[i]), "x3": float(x3[i])}
        features["plan"] = str(plans[i])
        recs.append(prediction(f"j{i}", T0 + i * 1000, 1, label=1, features=features))
    (w,) = compute_windows(records_to_columns(recs, SPEC), HOUR, stats, joint=joint, quality=True)
    return w


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_joint_shift_no_single_feature_shows_is_caught(seed):
    rng = np.random.default_rng(seed)
    stats, joint = references(rng)
    stable = window(rng, stats, joint, 0.8)
    moved = window(rng, stats, joint, -0.8)  # the same marginals, the correlation reversed
    assert max(moved.drift[f]["psi"] for f in ("x1", "x2", "x3")) < 0.1  # no single feature shows it
    assert max(moved.drift[f]["ks"] for f in ("x1", "x2", "x3")) < 0.1
    assert moved.joint_drift["low"] > 0.75
    assert {d[0] for d in moved.joint_drift["drivers"][:2]} == {"x1", "x2"}
    assert stable.joint_drift["low"] < 0.55 < 0.6 and stable.joint_drift["rows"] == 1000


def test_data_quality_counts_missing_out_of_range_and_unseen_values():
    rng = np.random.default_rng(4)
    stats, joint = references(rng)
    w = window(rng, stats, joint, 0.8, plan="platinum", missing=0.1)
    assert w.quality["x2"]["missing"] == pytest.approx(0.1, abs=0.02)
    assert w.quality["x1"]["missing"] == 0 and w.quality["x1"]["out_of_range"] < 0.01
    assert w.quality["plan"]["unseen"] == pytest.approx(0.3, abs=0.03)


def test_a_joint_drift_policy_fails_on_the_bound_and_names_the_drivers():
    from monitoring.config.pipeline import JointDriftPolicy
    from monitoring.domain.decisions.thresholds import evaluate_window

    rng = np.random.default_rng(7)
    stats, joint = references(rng)
    policy = JointDriftPolicy(kind="joint_drift")
    (moved,) = evaluate_window(window(rng, stats, joint, -0.8), [policy])
    assert (moved.status, moved.action) == ("fail", "warn") and moved.bound > 0.6
    assert "driven by x" in moved.reason
    (calm,) = evaluate_window(window(rng, stats, joint, 0.8), [policy])
    assert calm.status == "pass"
