"""Estimated performance in the loop on the local workspace: bootstrap stores the estimation model with
the version, compute_accuracy estimates every window before its labels and tracks the estimation error
once they land, and an ``estimated`` policy warns in evaluate_thresholds' VERDICT."""

from __future__ import annotations

from monitoring.core.logs import verdict_line
from monitoring.domain.training.artifacts import load_artifact

POLICIES = {
    "thresholds": {
        "policies": [
            {"kind": "min_labelled", "min": 50},
            {"kind": "absolute", "metric": "accuracy", "min": 0.5},
            {"kind": "estimated", "metric": "accuracy", "min": 0.99},  # a floor no model keeps: it must warn
        ]
    },
    "scenario": {"drift": {"kind": "covariate", "start_after": "1h"}},
}


def test_windows_are_estimated_before_labels_and_the_error_is_tracked_after(make_pipeline):
    p = make_pipeline(POLICIES)
    v1 = load_artifact(p.ctx.artifacts_dir / p.cfg.model.name / "v1").metadata
    assert v1["estimation"]["task"] == "classification" and v1["estimation"]["calibration"]["x"]
    outs = [p.cycle(c, redeploy_too=False) for c in (1, 2, 3)]
    accuracy = outs[-1]["accuracy"]
    assert accuracy.fields["estimated_metric"] == "accuracy"
    assert 0.5 < accuracy.fields["estimated"] < 1
    assert "estimation_error" in accuracy.fields
    windows = [w for w in p.ctx.store.windows() if w.predictions]
    assert windows and all(w.estimated["accuracy"]["rows"] == w.predictions for w in windows)
    for w in windows:
        item = w.estimated["accuracy"]
        assert item["realized"] == w.accuracy  # the realized metric beside the estimate, once labels land
        if w.labelled >= 100:
            assert abs(item["error"]) < 0.15, item
    evaluate = outs[-1]["evaluate"]
    assert evaluate.fields["decision_action"] == "warn", evaluate
    assert evaluate.fields["warnings"].startswith("estimated accuracy ")
    line = verdict_line("compute_accuracy", accuracy.status, accuracy.summary, accuracy.action, **accuracy.fields)
    assert " estimated=" in line and " estimation_error=" in line
