"""Workflows in-process on the local workspace: exactly-once redeploys, healthy no-ops, noisy windows."""

from dataclasses import dataclass

import pytest

from monitoring.cmlclient.refs import DeploymentRef
from monitoring.core.logs import verdict_line
from monitoring.state.store import StateStore
from monitoring.workflows.context import Outcome
from monitoring.workflows.redeploy import redeploy
from tests.integration.support import Pipeline, running_pipeline

DRIFT_EARLY = {"scenario": {"drift": {"kind": "concept", "start_after": "1h"}}}


@dataclass
class HealthyRun:
    pipeline: Pipeline
    deployments_before: list[str]
    second_cycle: dict[str, Outcome]


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    """Two healthy cycles of the base config, run once: the tests that use it only read what they left."""
    root = tmp_path_factory.mktemp("healthy") / "project"
    with pytest.MonkeyPatch.context() as patch, running_pipeline(root, patch) as p:
        before = [d.id for d in p.deployments()]
        p.cycle(1)
        yield HealthyRun(p, before, p.cycle(2))


def test_redeploy_on_a_healthy_decision_changes_nothing(healthy):
    p, out = healthy.pipeline, healthy.second_cycle
    assert out["evaluate"].fields["decision_action"] == "none"
    assert out["redeploy"].status == "no_action"
    assert "nothing to redeploy" in out["redeploy"].summary
    assert [d.id for d in p.deployments()] == healthy.deployments_before
    assert [d.version for d in p.ctx.store.deployments(p.cfg.model.name)] == ["v1"]


@dataclass
class RedeployRun:
    """A drifted run, acted on by two redeploy runs, then two more cycles, with what was seen on the way."""

    pipeline: Pipeline
    breach: dict[str, Outcome]
    first: Outcome
    second: Outcome
    live_after: list[DeploymentRef]
    versions_after: list[str]
    fourth_cycle: dict[str, Outcome]


@pytest.fixture(scope="module")
def redeployed(tmp_path_factory):
    """Run once for the module; the tests that use it only read what it saw and left."""
    root = tmp_path_factory.mktemp("redeployed") / "project"
    with pytest.MonkeyPatch.context() as patch, running_pipeline(root, patch, DRIFT_EARLY) as p:
        p.cycle(1)
        p.cycle(2)  # drifted traffic; its labels arrive next cycle
        breach = p.cycle(3, redeploy_too=False)
        first, second = redeploy(p.ctx), redeploy(p.ctx)
        live = [d for d in p.deployments() if d.status == "deployed"]
        versions = [d.version for d in p.ctx.store.deployments(p.cfg.model.name)]
        fourth = p.cycle(4)
        p.cycle(5)
        yield RedeployRun(p, breach, first, second, live, versions, fourth)


def test_a_decision_is_acted_on_once_and_a_second_run_changes_nothing(redeployed):
    p, first, second = redeployed.pipeline, redeployed.first, redeployed.second
    decision_id = redeployed.breach["evaluate"].fields["decision"]
    assert redeployed.breach["evaluate"].fields["decision_action"] == "redeploy"
    assert first.status == "deployed" and first.fields["version"] == "v2"
    assert second.status == "no_action" and f"decision {decision_id} was already acted on" in second.summary
    live = redeployed.live_after
    assert len(live) == 1 and live[0].environment["CML_MONITOR_MODEL_ARTIFACT"].endswith("/v2")
    assert redeployed.versions_after == ["v1", "v2"]
    decision = p.ctx.store.decision(decision_id)
    assert decision.outcome == "deployed" and decision.consumed_by == p.ctx.platform.run_id


def test_new_deployment_crn_is_re_resolved_for_metrics(redeployed):
    p = redeployed.pipeline
    v1, v2, *_ = p.ctx.store.deployments(p.cfg.model.name)
    assert (v1.version, v2.version) == ("v1", "v2") and v1.deployment_crn != v2.deployment_crn
    assert redeployed.fourth_cycle["traffic"].fields["version"] == "v2"
    v2_windows = p.ctx.store.windows(deployment_crn=v2.deployment_crn)
    assert any(w.labelled >= 200 for w in v2_windows), v2_windows


QUIET_POLICIES = {
    "thresholds": {
        "consecutive": 2,
        "policies": [{"kind": "min_labelled", "min": 15}, {"kind": "wilson", "min": 0.8, "confidence": 0.95}],
    }
}


def test_small_noisy_windows_never_trigger_a_redeploy(make_pipeline):
    p = make_pipeline(
        {**QUIET_POLICIES, "scenario": {"rows_per_cycle": 20, "label_noise": 0.2, "drift": {"kind": "none"}}}
    )
    actions = []
    for cycle in range(1, 7):
        actions.append(p.cycle(cycle)["evaluate"].fields["decision_action"])
    accuracies = [w.accuracy for w in p.ctx.store.windows() if w.labelled]
    assert min(accuracies) < 0.8, accuracies  # point estimates do dip below the threshold...
    assert "redeploy" not in actions, actions  # ...but a handful of labels never triggers a redeploy
    assert [d.version for d in p.ctx.store.deployments(p.cfg.model.name)] == ["v1"]


def verdict(outcome: Outcome) -> str:
    return verdict_line("evaluate_thresholds", outcome.status, outcome.summary, outcome.action, **outcome.fields)


def test_a_sustained_drop_triggers_exactly_one_redeploy(make_pipeline):
    p = make_pipeline({**QUIET_POLICIES, **DRIFT_EARLY})
    outs = [p.cycle(c)["evaluate"] for c in range(1, 6)]
    actions = [o.fields["decision_action"] for o in outs]
    # windows 2 and 3 are drifted; with consecutive: 2 the first breaching window is pending, the second acts.
    assert actions[:3] == ["insufficient_data", "none", "pending"], actions
    assert actions[3] == "redeploy", actions
    healthy, pending, acting = outs[1:4]
    assert healthy.status == "ok" and "breach" not in verdict(healthy)
    assert pending.status == "pending" and pending.fields["breach"] == "1 of 2"
    assert "status=pending " in verdict(pending) and ' breach="1 of 2" ' in verdict(pending)
    assert "breach 1 of 2 consecutive breaching windows" in pending.summary
    assert acting.status == "breach" and acting.fields["breach"] == "2 of 2"
    stored = p.ctx.store.decision(pending.fields["decision"])
    assert (stored.action.value, stored.breaches, stored.consecutive) == ("pending", 1, 2)
    assert actions.count("redeploy") == 1
    assert [d.version for d in p.ctx.store.deployments(p.cfg.model.name)] == ["v1", "v2"]


def test_state_store_survives_reopening(healthy):
    p = healthy.pipeline
    with StateStore(p.cfg.state.url, base_dir=p.root) as again:
        decision = again.latest_decision(p.cfg.model.name)
    assert decision.id == p.ctx.store.latest_decision(p.cfg.model.name).id
    assert decision.id == healthy.second_cycle["evaluate"].fields["decision"]


def test_the_loop_runs_with_both_stores_on_postgresql(make_pipeline, new_pg_database):
    p = make_pipeline(
        {
            **DRIFT_EARLY,
            "platform": {"local": {"metrics_url": new_pg_database("metrics")}},
            "state": {"url": new_pg_database("state")},
        }
    )
    assert p.ctx.store.db.dialect == "postgresql"
    actions = [p.cycle(c)["evaluate"].fields["decision_action"] for c in (1, 2, 3)]
    assert actions == ["insufficient_data", "none", "redeploy"]
    assert [d.version for d in p.ctx.store.deployments(p.cfg.model.name)] == ["v1", "v2"]


def test_failed_warn_only_checks_are_in_the_verdict_ranked_whatever_the_decision(make_pipeline):
    """Covariate drift under a warn-only drift policy while accuracy breaches: the decision is a
    pending breach, yet the drifted features are named in its VERDICT and reason, worst first."""
    drift_policy = {"kind": "drift", "max_psi": 0.1, "action": "warn"}
    thresholds = {**QUIET_POLICIES["thresholds"]}
    thresholds["policies"] = [*thresholds["policies"], drift_policy]
    p = make_pipeline({"thresholds": thresholds, "scenario": {"drift": {"kind": "both", "start_after": "1h"}}})
    outs = [p.cycle(c)["evaluate"] for c in (1, 2, 3)]
    judged = outs[2]
    decision = p.ctx.store.decision(judged.fields["decision"])
    assert decision.action.value == "pending" and decision.warnings, decision
    severities = [w.severity for w in decision.warnings]
    assert severities == sorted(severities, reverse=True) and severities[-1] > 1
    worst = decision.warnings[0]
    drift = p.ctx.store.windows(deployment_crn=decision.deployment_crn)
    window = next(w for w in drift if w.start_ms == decision.window_start_ms)
    assert worst.value == max(s["psi"] for s in window.drift.values())  # PSI is the only limit: the worst PSI leads
    text = judged.fields["warnings"]
    assert text.startswith(f"{worst.subject} psi ") and text == decision.warnings_text()
    shown = min(3, len(decision.warnings))
    assert text.count("x)") == shown and (len(decision.warnings) <= 3 or text.endswith(" more"))
    line = verdict(judged)
    assert f'warnings="{text}"' in line and line.count("\n") == 0
    assert f"Warn-only checks failed, worst first: {text}." in decision.reason
