"""Releases that go wrong: failed builds, deployments that never get healthy, killed runs, two runs at once."""

from __future__ import annotations

import pytest

from monitoring.core.errors import EXIT_REDEPLOY_FAILED, BusyError
from monitoring.workflows.accuracy import compute_accuracy
from monitoring.workflows.evaluate import evaluate_thresholds
from monitoring.workflows.redeploy import redeploy
from monitoring.workflows.traffic import post_due_labels
from tests.faults.invariants import assert_invariants
from tests.faults.rig import Rig, run_concurrently, wait_for


def converge(rig: Rig, hours: float = 1.1) -> None:
    """What the next cycle does: evaluate the (still breaching) windows again, then redeploy acts on it."""
    rig.at(hours)
    decided = evaluate_thresholds(rig.ctx)
    assert decided.fields["decision_action"] == "redeploy", decided
    code, verdict = rig.job("redeploy")
    assert code == 0 and verdict["status"] == "deployed", rig.last_log[-3000:]
    assert verdict["decision"] == decided.fields["decision"]


def stopped_or_failed(rig: Rig, exclude: str) -> list[str]:
    return [d.status for d in rig.deployments() if d.id != exclude]


def test_a_failed_build_changes_nothing_says_so_and_the_next_decision_converges(rig):
    before = rig.live()
    rig.ws.inject("build=fail")
    code, verdict = rig.job("redeploy")
    assert code == EXIT_REDEPLOY_FAILED and verdict["status"] == "failed"
    assert "ended with status 'build failed'" in verdict["summary"]
    assert f"the previous deployment {before.id} (v1) keeps serving" in verdict["summary"]
    assert rig.live().id == before.id and len(rig.deployments()) == 1
    assert rig.ctx.store.decision(rig.template_decision).outcome == "failed"
    converge(rig)
    assert_invariants(rig)


@pytest.mark.parametrize("how", ["health check fails", "deploy timeout"])
def test_a_deployment_that_never_gets_healthy_is_stopped_and_v1_keeps_serving(rig, how):
    before = rig.live()
    if how == "health check fails":
        rig.ws.inject("deploy=never-healthy:2s")  # the workspace marks it failed after 2 s
    else:
        rig.reconfigure(deployment={"deploy_timeout": "2s"})  # redeploy gives up first and stops it
        rig.ws.inject("deploy=never-healthy")
    code, verdict = rig.job("redeploy")
    assert code == EXIT_REDEPLOY_FAILED and verdict["status"] == "failed", rig.last_log[-3000:]
    expected = "ended with status 'failed'" if how == "health check fails" else "timed out after 2s"
    assert expected in verdict["summary"] and f"{before.id} (v1) kept serving" in verdict["summary"]
    assert rig.live().id == before.id
    final = "failed" if how == "health check fails" else "stopped"
    wait_for(lambda: stopped_or_failed(rig, before.id) == [final], f"the new deployment to be {final}", timeout=20)
    assert rig.ctx.store.decision(rig.template_decision).outcome == "failed"
    assert_invariants(rig)


def test_redeploy_killed_between_build_and_deploy_converges_on_the_next_decision(rig):
    before = rig.live()
    rig.ws.inject("job.redeploy=kill:after_build")
    status, verdict, log_text = rig.job_run("redeploy")
    assert status == "ENGINE_FAILED" and verdict == {}
    assert "killing this run with SIGKILL step=after_build" in log_text
    assert "Engine was killed by signal SIGKILL" in log_text
    decision = rig.ctx.store.decision(rig.template_decision)
    assert decision.consumed_by and decision.outcome is None  # claimed, never finished
    assert rig.live().id == before.id and len(rig.builds()) == 2 and len(rig.deployments()) == 1
    code, verdict = rig.job("redeploy")  # the killed decision is not acted on twice
    assert code == 0 and verdict["status"] == "no_action" and decision.consumed_by in verdict["summary"]
    converge(rig)
    assert_invariants(rig)


def test_redeploy_killed_between_deploy_and_verify_leaves_v2_serving_and_it_is_discovered(rig):
    before = rig.live()
    rig.ws.inject("job.redeploy=kill:after_deploy")
    status, verdict, log_text = rig.job_run("redeploy")
    assert status == "ENGINE_FAILED" and "killing this run with SIGKILL step=after_deploy" in log_text
    live = rig.live()
    assert live.id != before.id  # the new deployment went live before the kill
    model = rig.cfg.model.name
    assert rig.ctx.store.current_deployment(model).deployment_crn == before.crn  # not recorded yet
    rig.at(1.2)
    compute_accuracy(rig.ctx)
    current = rig.ctx.store.current_deployment(model)
    assert (current.deployment_crn, current.version, current.reason) == (live.crn, "v2", "discovered")
    decided = evaluate_thresholds(rig.ctx)  # v2 has no labelled window yet: no second redeploy
    assert decided.fields["decision_action"] == "insufficient_data"
    code, verdict = rig.job("redeploy")
    assert code == 0 and verdict["status"] == "no_action"
    assert len(rig.deployments()) == 2
    rig.traffic()
    assert_invariants(rig)


def test_two_redeploy_runs_at_once_act_exactly_once(rig):
    one, two = rig.context(run_id="run-one"), rig.context(run_id="run-two")
    outcomes = run_concurrently(lambda: redeploy(one), lambda: redeploy(two))
    assert sorted(o.status for o in outcomes) == ["deployed", "no_action"], outcomes
    winner = next(o for o in outcomes if o.status == "deployed")
    loser = next(o for o in outcomes if o.status == "no_action")
    claimed = rig.ctx.store.decision(rig.template_decision).consumed_by
    assert claimed in ("run-one", "run-two") and claimed in loser.summary
    assert winner.fields["decision"] == loser.fields["decision"] == rig.template_decision
    one.store.close()
    two.store.close()
    assert_invariants(rig)


def test_a_job_run_and_a_manual_run_of_redeploy_at_once_act_exactly_once(rig):
    """One run is a real engine process, the other this process: the claim holds across processes."""
    manual = rig.context(run_id="manual-run")
    job, here = run_concurrently(lambda: rig.job_run("redeploy"), lambda: redeploy(manual))
    statuses = sorted([job[1].get("status"), here.status])
    assert statuses == ["deployed", "no_action"], (job[1], here, job[2][-2000:])
    api = rig.ctx.platform.api
    spec = next(j for j in api.jobs() if j.name == "cml-monitor redeploy")
    api.start_job_run(spec.id)
    with pytest.raises(BusyError, match="already has an active run"):
        api.start_job_run(spec.id)  # CML allows one active run per job
    manual.store.close()
    assert_invariants(rig)


def test_predictions_served_before_a_late_discovery_are_not_lost(rig):
    """As after a redeploy killed between deploy and verify: v2 serves, the state store does not know it yet."""
    assert redeploy(rig.ctx).status == "deployed"
    v2 = rig.live()
    rig.ctx.store.db.execute("DELETE FROM deployments WHERE deployment_crn = ?", (v2.crn,))
    rig.at(1.2)
    served = rig.traffic()  # answered by v2 before anyone records it
    assert served.fields["version"] == "v2"
    now = rig.at(2.05)
    post_due_labels(rig.ctx, now, rig.cfg.windows.label_key)
    compute_accuracy(rig.ctx)
    assert sum(w.labelled for w in rig.ctx.store.windows(deployment_crn=v2.crn)) == 200
