"""CML API v2 answers 5xx, times out, or loses the answer of a call that took effect."""

from __future__ import annotations

import pytest

from monitoring.core.errors import EXIT_PLATFORM, EXIT_REDEPLOY_FAILED
from tests.faults.invariants import assert_invariants
from tests.faults.rig import wait_for


@pytest.mark.parametrize(
    "faults",
    [
        ("api.*=503 x3", "api.get_model_deployment=timeout:200ms x2", "api.get_model_build=504 x2"),
        ("api.create_model_deployment=500-after x1",),  # CML's gateway deadline: created, answered 500
        ("api.create_model_build=500-after x1",),
    ],
)
def test_redeploy_rides_out_api_faults_with_one_build_and_one_deployment(rig, faults):
    before = rig.live()
    rig.ws.inject(*faults)
    code, verdict = rig.job("redeploy")
    assert code == 0, rig.last_log[-3000:]
    assert verdict["status"] == "deployed" and verdict["decision"] == rig.template_decision
    assert sum(f.fired for f in rig.ws.faults.faults()) == sum(int(f.rsplit("x", 1)[1]) for f in faults)
    if "after" in faults[0]:
        assert "retry not needed, the earlier attempt took effect" in rig.last_log
    assert rig.live().id != before.id and len(rig.builds()) == 2 and len(rig.deployments()) == 2
    assert_invariants(rig)


def test_a_lost_answer_that_is_not_retried_still_leaves_the_previous_deployment_alone(rig):
    """The create is made but its connection drops: redeploy fails, and the orphan never replaces v1."""
    before = rig.live()
    rig.ws.inject("api.create_model_deployment=drop-after x1")
    code, verdict = rig.job("redeploy")
    if code == 0:  # the client retried the dropped call (then the earlier attempt is found): fine too
        assert verdict["status"] == "deployed" and len(rig.deployments()) == 2
    else:
        assert code == EXIT_REDEPLOY_FAILED and verdict["status"] == "failed", rig.last_log[-3000:]
        assert "kept serving" in verdict["summary"] or "keeps serving" in verdict["summary"]
        orphans = [d for d in rig.deployments() if d.id != before.id]
        assert len(orphans) == 1
        wait_for(
            lambda: (
                rig.ctx.platform.api.get_deployment(rig.model, orphans[0].build_id, orphans[0].id).status
                in ("stopped", "failed")
            ),
            "the orphan deployment to stop",
            timeout=20,
        )
        assert rig.live().id == before.id
    decision = rig.ctx.store.decision(rig.template_decision)
    assert decision.outcome == ("deployed" if code == 0 else "failed")
    assert_invariants(rig)


def test_api_down_fails_compute_accuracy_clearly_changing_nothing_then_converges(rig):
    rig.at(2.05)
    store = rig.ctx.store
    windows = [(w.deployment_crn, w.start_ms, w.labelled) for w in store.windows()]
    rig.ws.inject("api.list_models=503 always")
    code, verdict = rig.job("compute_accuracy")
    assert code == EXIT_PLATFORM and verdict["status"] == "failed"
    assert "list models named 'telco-cell-tower-failure': HTTP 503" in verdict["summary"]
    assert [(w.deployment_crn, w.start_ms, w.labelled) for w in store.windows()] == windows
    rig.ws.faults.clear()
    code, verdict = rig.job("compute_accuracy")
    assert code == 0 and verdict["status"] == "ok"
    assert_invariants(rig)
