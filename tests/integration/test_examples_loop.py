"""The examples' closed loops at small size on the local workspace: a breach on the task's metric,
exactly one redeploy, and recovery (issue 10, item 9; credit: issue 19). Each runs the example's
own config, data and trainer, with fewer rows per cycle where the example has many; the chain
runs in-process, cycle by cycle."""

from __future__ import annotations

import pytest

from monitoring.domain.training.artifacts import load_artifact
from monitoring.domain.training.predictions import score
from monitoring.workflows.retrain import LOGGED_DEPLOYMENT, labelled_frame
from tests.chaos.recompute import assert_windows_recomputed
from tests.integration.support import SMALL_REPLAYS, Pipeline
from tests.project import merge

# Each loop trains, deploys and retrains a real model: a few minutes alone, more on a loaded 2-core machine.
pytestmark = pytest.mark.timeout(900)

#: Churn: 150 customers an hour (one every 24 s); from 2 hours of data on, 80% of DSL customers leave.
CHURN_SMALL = {
    "data": {
        "replay": {
            "source": {"rows": "3000:4200"},
            "row_interval": "24s",
            "drift": {"after": "2026-01-01T02:00:00Z"},
        }
    },
    "thresholds": {
        "policies": [{"kind": "min_labelled", "min": 60}, {"kind": "absolute", "metric": "accuracy", "min": 0.72}]
    },
    "retraining": {"min_rows": 150},
}


def run(pipeline: Pipeline, cycles: int) -> list[dict]:
    """Each cycle's decision, the metric values and window it judged, and the redeploy's outcome."""
    rows = []
    for cycle in range(1, cycles + 1):
        out = pipeline.cycle(cycle)
        decision = pipeline.ctx.store.latest_decision(pipeline.cfg.model.name)
        rows.append(
            {
                "cycle": cycle,
                "action": out["evaluate"].fields["decision_action"],
                "values": dict(decision.values) if decision else {},
                "window": decision.window_start_ms if decision else None,
                "redeploy": out["redeploy"].status,
                "version": pipeline.ctx.store.current_deployment(pipeline.cfg.model.name).version,
            }
        )
    return rows


def assert_windows_match_records(pipeline: Pipeline) -> int:
    """The stored windows (v1's and v2's) equal a recomputation from the raw records."""
    ctx = pipeline.ctx
    return assert_windows_recomputed(ctx.store, pipeline.cfg, pipeline.ws.metrics_store.db.path, ctx.artifacts_dir)


def test_churn_breaches_on_accuracy_redeploys_once_and_recovers(make_pipeline):
    pipeline = make_pipeline(CHURN_SMALL, example="churn")
    rows = run(pipeline, 7)
    actions = [r["action"] for r in rows]
    # the first drifted rows are sent in cycle 3 and judged in cycle 4; two breaching windows in a row act
    assert "redeploy" not in actions[:3] and all(r["values"].get("accuracy", 1) >= 0.72 for r in rows[1:3]), rows
    assert rows[3]["values"]["accuracy"] < 0.72, rows[3]
    assert [r["redeploy"] for r in rows].count("deployed") == 1, rows
    deployed_at = next(i for i, r in enumerate(rows) if r["redeploy"] == "deployed")
    assert actions[deployed_at] == "redeploy" and rows[deployed_at]["version"] == "v2"
    # v2's first whole window is judged two cycles later: accuracy is back above the floor
    assert rows[-1]["version"] == "v2" and rows[-1]["action"] == "none", rows[-1]
    assert rows[-1]["values"]["accuracy"] >= 0.72
    assert [d.version for d in pipeline.ctx.store.deployments(pipeline.cfg.model.name)] == ["v1", "v2"]
    assert assert_windows_match_records(pipeline) >= 6


#: Housing: half of the replayed houses (a seeded sample), the AMP's months and times otherwise. A
#: challenger that errs less at all is deployed: with half the houses, the example's 1% margin sits
#: within what a few seconds of pipeline time (a few more sales labelled) move, so on a busy machine
#: the first challengers could be rejected and v2 come when no house was left to price.
HOUSING_SMALL = {
    "data": {"replay": {"source": {"shuffle_seed": 3, "rows": "0:4500"}}},
    "thresholds": {
        "policies": [{"kind": "min_labelled", "min": 100}, {"kind": "relative_rise", "metric": "mae", "max_rise": 0.04}]
    },
    "retraining": {"min_improvement": 0.0},
}


def test_housing_breaches_on_mae_redeploys_once_and_recovers(make_pipeline):
    pipeline = make_pipeline(HOUSING_SMALL, example="housing")
    rows = run(pipeline, 8)
    ctx, name = pipeline.ctx, pipeline.cfg.model.name

    def ceiling(version: str) -> float:  # relative_rise, baseline training: 4% above the held-out MAE
        return 1.04 * load_artifact(ctx.artifacts_dir / name / version).metadata["holdout"]["mae"]

    judged = [r for r in rows if "mae" in r["values"]]
    # the winter months are within 4% of v1's held-out error; then prices rise and the error with them
    assert [r["action"] for r in judged[:2]] == ["none", "none"], rows
    assert all(r["values"]["mae"] <= ceiling("v1") for r in judged[:2])
    breach = next(r for r in rows if r["action"] == "redeploy")
    assert breach["values"]["mae"] > ceiling("v1") and breach["values"]["bias"] < 0, breach  # it under-prices
    # one new version is deployed (a challenger that is not better is rejected: the champion serves on)
    assert [r["redeploy"] for r in rows].count("deployed") == 1, rows
    assert [d.version for d in ctx.store.deployments(name)] == ["v1", "v2"]
    # v2 errs less than v1 would have on the very houses v2 priced (prices keep rising ahead of the
    # labels, so neither is back at v1's training error: docs/own-model.md, "Housing")
    v2 = ctx.store.deployments(name)[-1]

    def served_by_v2():
        served = labelled_frame(ctx, v2.deployed_ms, pipeline.ws.clock.now_ms() + 1)
        return served[served[LOGGED_DEPLOYMENT] == v2.deployment_crn]

    # a breach judged a cycle later (labels due around a cycle's edge) deploys v2 late: its houses
    # sell, and are labelled, in the next cycles (traffic only, no further redeploy)
    served = served_by_v2()
    for extra in range(len(rows) + 1, len(rows) + 4):
        if len(served) >= 100:
            break
        pipeline.cycle(extra, redeploy_too=False)
        served = served_by_v2()
    assert len(served) >= 100, len(served)
    errors = {}
    for version in ("v1", "v2"):
        artifact = load_artifact(ctx.artifacts_dir / name / version)
        errors[version] = score(artifact.estimator, served, pipeline.cfg.model, artifact.capabilities)["mae"]
    assert errors["v2"] < errors["v1"], errors
    assert assert_windows_match_records(pipeline) >= 6


#: Credit: half of the 2026 applications (a seeded sample, in time order), about 100 a month; the
#: example's floors, with fewer labels needed to judge a month and fewer rows to retrain on.
CREDIT_SMALL = merge(
    SMALL_REPLAYS["credit"],
    {
        "thresholds": {
            "policies": [
                {"kind": "min_labelled", "min": 60},
                {"kind": "absolute", "metric": "recall", "min": 0.6},
                {"kind": "absolute", "metric": "accuracy", "min": 0.7},
                {"kind": "drift", "max_psi": 0.25, "action": "warn"},
            ]
        },
        "retraining": {"min_rows": 100},
    },
)


def test_credit_breaches_when_a_new_category_and_a_concept_shift_arrive_redeploys_once_and_recovers(make_pipeline):
    """Credit risk (issue 19): string labels good/bad, a custom trainer whose pipeline pickles its own
    function, Parquet files with typed columns, and drift in the data itself: from March a category
    v1 never saw (``employment: gig``) and a concept shift."""
    pipeline = make_pipeline(CREDIT_SMALL, example="credit")
    ctx, cfg, name = pipeline.ctx, pipeline.cfg, pipeline.cfg.model.name
    rows = run(pipeline, 6)
    actions = [r["action"] for r in rows]

    def passes(values: dict) -> bool:  # the example's floors: recall of "bad" 0.6, accuracy 0.7
        return values["recall"] >= 0.6 and values["accuracy"] >= 0.7

    # a month of applications per cycle: January and February are judged healthy by v1 ...
    assert actions[1:3] == ["none", "none"] and all(passes(r["values"]) for r in rows[1:3]), rows
    # ... March, the first month with the new category and the new rates, breaches and is acted on at once
    assert actions[3] == "redeploy" and not passes(rows[3]["values"]), rows[3]
    assert [r["redeploy"] for r in rows].count("deployed") == 1 and rows[3]["version"] == "v2", rows
    assert [d.version for d in ctx.store.deployments(name)] == ["v1", "v2"]
    v1, v2 = ctx.store.deployments(name)
    march = next(w for w in ctx.store.windows(v1.deployment_crn) if w.start_ms == rows[3]["window"])
    assert march.drift["employment"]["psi"] > cfg.thresholds.policies[-1].max_psi, march.drift  # "gig" is unseen

    def employment_categories(version: str) -> list[str]:
        meta = load_artifact(ctx.artifacts_dir / name / version).metadata
        return meta["reference"]["features"]["employment"]["categories"]

    assert "gig" not in employment_categories("v1") and "gig" in employment_categories("v2")
    # May, v2's first labelled month: both floors hold again (the drift policy only warns)
    assert rows[-1]["version"] == "v2" and actions[-1] in ("none", "warn") and passes(rows[-1]["values"]), rows[-1]
    served = labelled_frame(ctx, v2.deployed_ms, pipeline.ws.clock.now_ms() + 1)
    served = served[served[LOGGED_DEPLOYMENT] == v2.deployment_crn]
    assert len(served) >= 60 and set(served[cfg.model.label.name]) == {"good", "bad"}
    assert (served["employment"] == "gig").mean() > 0.2
    scores = {}
    for version in ("v1", "v2"):  # on the very applications v2 scored: v2 finds far more of the defaults
        artifact = load_artifact(ctx.artifacts_dir / name / version)
        scores[version] = score(artifact.estimator, served, cfg.model, artifact.capabilities)
    assert scores["v2"]["recall"] > scores["v1"]["recall"] + 0.2, scores
    assert scores["v2"]["f1"] > scores["v1"]["f1"], scores
    # the tracked probability is P(bad), the positive class, though the trainer's classes_ are
    # ["bad", "good"] and the spec's [good, bad]: the windows' ROC AUC is about finding the defaults
    records = [r["metrics"] for r in pipeline.predictions() if r["modelDeploymentCrn"] == v2.deployment_crn]
    assert records and all((m["probability"] > 0.5) == (m["prediction"] == "bad") for m in records)
    assert rows[-1]["values"]["roc_auc"] > 0.8 and rows[1]["values"]["roc_auc"] > 0.8, rows
    assert assert_windows_match_records(pipeline) >= 5
