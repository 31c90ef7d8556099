"""Slices, joint drift and data quality in the loop on the local workspace: bootstrap keeps each slice's counts on
the held-out rows and a sample of the training rows; every window stores its slices (metrics with bounds, the
reference beside them), its joint drift and its data quality; evaluate_thresholds judges them."""

from __future__ import annotations

from monitoring.domain.training.artifacts import load_artifact

CONFIG = {
    "slices": {"by": [{"feature": "iot_signal_1", "bins": [4, 6]}], "min_rows": 30},
    "thresholds": {
        "policies": [
            {"kind": "min_labelled", "min": 50},
            {"kind": "absolute", "metric": "accuracy", "min": 0.5},
            {"kind": "slices", "metrics": ["accuracy", "recall"]},
            {"kind": "joint_drift", "max_auc": 0.6},
        ]
    },
    "scenario": {"drift": {"kind": "none"}},
}


def test_windows_keep_their_slices_joint_drift_and_quality_and_are_judged(make_pipeline):
    p = make_pipeline(CONFIG)
    v1 = load_artifact(p.ctx.artifacts_dir / p.cfg.model.name / "v1").metadata
    reference = v1["slices"]["reference"]
    assert set(reference) == {"iot_signal_1<4", "iot_signal_1 4..6", "iot_signal_1>=6"}
    assert sum(s["labelled"] for s in reference.values()) > 0 and len(v1["joint"]["sample"]) == 1000
    outs = [p.cycle(c, redeploy_too=False) for c in (1, 2, 3)]
    windows = [w for w in p.ctx.store.windows() if w.labelled]
    assert windows
    for w in windows:
        assert set(w.slices) <= set(reference) and w.slices
        item = next(iter(w.slices.values()))
        assert item["ref"] == reference[next(iter(w.slices))] and "accuracy" in item["metrics"]
        assert 0.3 < w.joint_drift["auc"] < 0.7 and w.joint_drift["low"] < 0.55 and w.joint_drift["drivers"] == []
        assert set(w.quality) == set(p.cfg.model.feature_names) and w.quality["iot_signal_1"]["missing"] == 0
    decision = p.ctx.store.decision(outs[-1]["evaluate"].fields["decision"])
    kinds = {r.kind: r.status for r in decision.results}
    assert kinds["slices"] in ("pass", "insufficient") and kinds["joint_drift"] == "pass", decision.results
    assert outs[-1]["evaluate"].fields["decision_action"] == "none"
