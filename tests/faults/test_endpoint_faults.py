"""The model endpoint misbehaves during traffic: no answered prediction loses its label, none gets two."""

from __future__ import annotations

from monitoring.core.errors import EXIT_PLATFORM
from monitoring.workflows.redeploy import redeploy
from tests.faults.invariants import assert_invariants
from tests.faults.rig import run_concurrently, wait_for

#: One traffic cycle per fault, in this order, on one workspace.
FAULTS = [
    "endpoint=503 x6",  # 5xx before the model sees the request
    "endpoint=429 x10",  # a burst of model.busy, shorter than the retries
    "endpoint=500-after x5",  # the model answered and recorded, the answer is lost
    "endpoint=drop-after x5",  # the connection breaks after the model answered
    "endpoint=delay:1500ms x4",  # the answer comes after the caller's 1 s timeout
]


def test_traffic_under_endpoint_faults_keeps_labels_exactly_once(rig):
    for cycle, fault in enumerate(FAULTS):
        # a 1 s timeout only where the fault is a late answer: on a loaded machine a real answer may take
        # longer than 1 s, and a timed-out answer is recorded without reaching the caller
        rig.reconfigure(scenario={"request_timeout": "1s" if "delay" in fault else "30s"})
        rig.at(1.5 + cycle)
        fired_before = rig.ws.faults.fired("endpoint")
        recorded_before = {r["predictionUuid"] for r in rig.records()}
        rig.ws.inject(fault)
        code, verdict = rig.job("simulate_traffic")
        assert code == 0 and verdict["status"] == "ok", (fault, rig.last_log[-2000:])
        assert int(verdict["predictions"]) + int(verdict["failed"]) == 200, fault
        assert rig.ws.faults.fired("endpoint") - fired_before == int(fault.rsplit("x", 1)[1]), fault
        unanswered = {r["predictionUuid"] for r in rig.records()} - recorded_before - set(rig.answered)
        if "after" in fault or "delay" in fault:  # the model recorded predictions whose answers were lost
            assert unanswered, f"{fault}: expected recorded predictions without an answer"
        else:
            assert not unanswered, f"{fault}: a refused request was recorded"
    assert_invariants(rig)


def test_a_burst_longer_than_the_retries_fails_the_cycle_clearly_and_the_next_run_converges(rig):
    rig.ws.inject("endpoint=429 always")
    code, verdict = rig.job("simulate_traffic")
    assert code == EXIT_PLATFORM and verdict["status"] == "failed"
    summary = verdict["summary"]
    assert "requests to 'telco-cell-tower-failure' failed after retries" in summary, summary
    assert "not sent (more than 5% failed)" in summary and "HTTP 429" in summary and "model.busy" in summary
    assert rig.ws.faults.fired("endpoint") < 200, "the cycle should stop sending once it has failed"
    rig.ws.faults.clear()
    rig.at(1.5)
    code, verdict = rig.job("simulate_traffic")
    assert code == 0 and verdict["status"] == "ok" and int(verdict["predictions"]) == 200
    assert_invariants(rig)


def test_connection_refused_while_the_deployment_is_replaced(rig):
    """Traffic runs while redeploy replaces v1 by v2; some requests meet a replica that is gone."""
    rig.reconfigure(scenario={"rows_per_cycle": 500})
    before = rig.live()
    rig.ws.inject("endpoint=refuse x6 skip=100")
    deployer = rig.context(run_id="replacer")

    def traffic_once_v2_is_deploying():
        wait_for(lambda: [d for d in rig.deployments() if d.id != before.id], "v2's deployment to be created")
        return rig.traffic()

    redeployed, traffic = run_concurrently(lambda: redeploy(deployer), traffic_once_v2_is_deploying)
    assert not isinstance(traffic, Exception), traffic
    assert redeployed.status == "deployed", redeployed
    assert traffic.fields["predictions"] + traffic.fields["failed"] == 500
    assert rig.ws.faults.fired("endpoint") == 6
    assert rig.live().id != before.id
    deployer.store.close()
    assert_invariants(rig)
