"""The invariants every fault must keep: nothing lost or doubled, decisions acted on once, something serves."""

from __future__ import annotations

from collections import Counter

from tests.faults.rig import Rig


def assert_labels_exactly_once(rig: Rig) -> None:
    """Every answered prediction has one queued label, posted into its one record; no other prediction has one.

    Call after ``rig.settle()`` (every queued label is due and posted).
    """
    pending = rig.pending()
    answered = rig.answered
    assert len(answered) == len(set(answered)), "a prediction uuid was answered twice"
    missing, extra = set(answered) - set(pending), set(pending) - set(answered)
    assert not missing, f"{len(missing)} answered predictions have no queued label, e.g. {sorted(missing)[:3]}"
    assert not extra, f"{len(extra)} labels were queued for predictions nobody got an answer for"
    unposted = [u for u, (_, posted) in pending.items() if posted is None]
    assert not unposted, f"{len(unposted)} labels were never posted, e.g. {unposted[:3]}"
    key = rig.cfg.windows.label_key
    records = [r for r in rig.records() if r["predictionUuid"]]
    copies = Counter(r["predictionUuid"] for r in records)
    doubled = [u for u in answered if copies[u] != 1]
    assert not doubled, f"{len(doubled)} answered predictions do not have exactly one record, e.g. {doubled[:3]}"
    wrong = [
        r["predictionUuid"]
        for r in records
        if r["predictionUuid"] in pending and r["metrics"].get(key) != pending[r["predictionUuid"]][0]
    ]
    assert not wrong, f"{len(wrong)} records hold a label other than the one queued, e.g. {wrong[:3]}"
    stray = [r["predictionUuid"] for r in records if key in r["metrics"] and r["predictionUuid"] not in pending]
    assert not stray, f"{len(stray)} predictions without an answer got a label"


def assert_decisions_acted_on_once(rig: Rig) -> None:
    """No decision made more than one build, and none more than one deployment of its build."""
    builds = rig.builds()
    api = rig.ctx.platform.api
    for decision in rig.ctx.store.list_decisions(rig.cfg.model.name, limit=1000):
        own = [b for b in builds if b.comment.endswith(f" {decision.id}")]
        assert len(own) <= 1, f"decision {decision.id} made {len(own)} builds"
        deployments = [d for b in own for d in api.deployments(rig.model, b.id)]
        assert len(deployments) <= 1, f"decision {decision.id} made {len(deployments)} deployments"
        if decision.outcome is not None:
            assert decision.consumed_by, f"decision {decision.id} has an outcome but no run claimed it"


def assert_serving(rig: Rig) -> None:
    """A deployment serves, the state store knows it, and it answers a real call."""
    rig.ws.faults.clear()
    live = rig.live()
    assert live is not None, "no deployment serves"
    endpoint = rig.ctx.platform.endpoint(rig.model, 10)
    try:
        prediction, uuid = endpoint.predict({name: 0.5 for name in rig.cfg.model.feature_names})
    finally:
        endpoint.close()
    assert prediction in rig.cfg.model.classes and uuid


def assert_invariants(rig: Rig) -> None:
    """All of them, after letting every queued label fall due."""
    rig.settle()
    assert_labels_exactly_once(rig)
    assert_decisions_acted_on_once(rig)
    assert_serving(rig)
