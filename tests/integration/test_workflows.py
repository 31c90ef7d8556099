"""Workflows in-process on the local workspace: exactly-once redeploys, healthy no-ops, noisy windows."""

from monitoring.state.store import StateStore

DRIFT_EARLY = {"scenario": {"drift": {"kind": "concept", "start_after": "1h"}}}


def test_redeploy_on_a_healthy_decision_changes_nothing(make_pipeline):
    p = make_pipeline()
    before = p.deployments()
    p.cycle(1)
    out = p.cycle(2)
    assert out["evaluate"].fields["decision_action"] == "none"
    assert out["redeploy"].status == "no_action"
    assert "nothing to redeploy" in out["redeploy"].summary
    assert [d.id for d in p.deployments()] == [d.id for d in before]
    assert [d.version for d in p.ctx.store.deployments(p.cfg.model.name)] == ["v1"]


def test_a_decision_is_acted_on_once_and_a_second_run_changes_nothing(make_pipeline):
    p = make_pipeline(DRIFT_EARLY)
    p.cycle(1)
    p.cycle(2)  # drifted traffic; its labels arrive next cycle
    out = p.cycle(3, redeploy_too=False)
    decision_id = out["evaluate"].fields["decision"]
    assert out["evaluate"].fields["decision_action"] == "redeploy"
    from monitoring.workflows.redeploy import redeploy

    first = redeploy(p.ctx)
    second = redeploy(p.ctx)
    assert first.status == "deployed" and first.fields["version"] == "v2"
    assert second.status == "no_action" and f"decision {decision_id} was already acted on" in second.summary
    live = [d for d in p.deployments() if d.status == "deployed"]
    assert len(live) == 1 and live[0].environment["CML_MONITOR_MODEL_ARTIFACT"].endswith("/v2")
    assert [d.version for d in p.ctx.store.deployments(p.cfg.model.name)] == ["v1", "v2"]
    decision = p.ctx.store.decision(decision_id)
    assert decision.outcome == "deployed" and decision.consumed_by == p.ctx.platform.run_id


def test_new_deployment_crn_is_re_resolved_for_metrics(make_pipeline):
    p = make_pipeline(DRIFT_EARLY)
    for cycle in (1, 2, 3):
        p.cycle(cycle)
    v1, v2 = p.ctx.store.deployments(p.cfg.model.name)
    assert v1.deployment_crn != v2.deployment_crn
    out = p.cycle(4)
    assert out["traffic"].fields["version"] == "v2"
    p.cycle(5)
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


def test_a_sustained_drop_triggers_exactly_one_redeploy(make_pipeline):
    p = make_pipeline({**QUIET_POLICIES, **DRIFT_EARLY})
    actions = [p.cycle(c)["evaluate"].fields["decision_action"] for c in range(1, 6)]
    # windows 2 and 3 are drifted; with consecutive: 2 the second breaching window acts.
    assert actions[:3] == ["insufficient_data", "none", "none"], actions
    assert actions[3] == "redeploy", actions
    assert actions.count("redeploy") == 1
    assert [d.version for d in p.ctx.store.deployments(p.cfg.model.name)] == ["v1", "v2"]


def test_state_store_survives_reopening(make_pipeline):
    p = make_pipeline()
    p.cycle(1)
    p.cycle(2)
    again = StateStore(p.cfg.state.url, base_dir=p.root)
    assert again.latest_decision(p.cfg.model.name).id == p.ctx.store.latest_decision(p.cfg.model.name).id


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
