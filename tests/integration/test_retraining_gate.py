"""Retraining on the local workspace: the strategy's rows, the refit, the statistical gate and its retry wait."""

from __future__ import annotations

import json

from monitoring.domain.training.artifacts import METADATA_FILE

#: Every window breaches (no model reaches 99.9% accuracy on noisy labels), whatever model serves.
ALWAYS_BREACH = {
    "thresholds": {
        "consecutive": 1,
        "cooldown": "0s",
        "policies": [{"kind": "min_labelled", "min": 100}, {"kind": "absolute", "metric": "accuracy", "min": 0.999}],
    },
    "scenario": {"drift": {"kind": "none"}},
}
BOOTSTRAP_GATE = {"gate": {"kind": "bootstrap", "retry_after_windows": 2}}


def test_a_challenger_no_better_than_the_champion_is_rejected_and_not_retried_on_the_same_windows(make_pipeline):
    p = make_pipeline({**ALWAYS_BREACH, "retraining": {"lookback": "1h", "min_rows": 200, **BOOTSTRAP_GATE}})
    p.cycle(1)
    second = p.cycle(2)
    assert second["evaluate"].fields["decision_action"] == "redeploy"
    rejected = second["redeploy"]
    assert rejected.status == "rejected", rejected.summary
    assert rejected.fields["gate"] == "bootstrap" and rejected.fields["confidence"] == 0.95
    assert rejected.fields["gain_low"] <= 0 <= rejected.fields["gain_high"] or rejected.fields["gain_high"] < 0
    assert "waits for 2 new labelled windows" in rejected.action
    third = p.cycle(3)["evaluate"]  # one new labelled window: not enough new evidence
    assert third.fields["decision_action"] == "suppressed", third.summary
    assert "retraining waits for 2 new labelled windows" in third.summary and "1 so far" in third.summary
    fourth = p.cycle(4, redeploy_too=False)["evaluate"]  # two new windows: retraining is decided again
    assert fourth.fields["decision_action"] == "redeploy", fourth.summary
    assert [d.version for d in p.ctx.store.deployments(p.cfg.model.name)] == ["v1"]


def test_a_better_challenger_is_refitted_on_every_selected_row_and_says_so(make_pipeline):
    p = make_pipeline(
        {
            "scenario": {"rows_per_cycle": 400, "drift": {"kind": "concept", "start_after": "1h"}},
            "thresholds": {
                "consecutive": 2,
                "policies": [{"kind": "min_labelled", "min": 60}, {"kind": "wilson", "min": 0.8, "confidence": 0.95}],
            },
            "retraining": {
                "lookback": "2h",
                "strategy": {"kind": "recency_weighted", "half_life": "15m"},
                **BOOTSTRAP_GATE,
            },
        }
    )
    outcomes = [p.cycle(c) for c in range(1, 6)]
    deployed = [o["redeploy"] for o in outcomes if o["redeploy"].status == "deployed"]
    assert len(deployed) == 1, [(o["redeploy"].status, o["redeploy"].summary) for o in outcomes]
    fields = deployed[0].fields
    assert fields["gate"] == "bootstrap" and fields["gain_low"] > 0
    assert fields["strategy"] == "recency_weighted" and fields["refit"] is True
    # the expanding rows: the 4000 training rows and every labelled row before the held-out ones
    assert fields["training_rows"] >= p.cfg.scenario.training_rows + fields["rows"] - fields["held_out"]
    metadata = json.loads((p.ctx.artifacts_dir / p.cfg.model.name / fields["version"] / METADATA_FILE).read_text())
    assert metadata["training_rows"] == {
        "strategy": "recency_weighted",
        "fitted_rows": fields["fitted_rows"],
        "held_out_rows": fields["held_out"],
        "held_out_included": True,
        "weighted": True,
    }
    assert metadata["n_train"] == fields["fitted_rows"] == fields["training_rows"] + fields["held_out"]
