"""The label queue's tables on both backends: intents, answers, dead runs, posts in doubt; and how intents find records."""

from __future__ import annotations

import socket
import subprocess
import sys

from monitoring.domain.records.keys import END_KEY, START_KEY, UUID_KEY
from monitoring.state.label_queue import Intent, LabelQueue, posting_lease, run_lease
from monitoring.state.leases import Leases
from monitoring.state.store import StateStore
from monitoring.workflows.labels import SLACK_MS, _pair

CRN = "crn-1"
REQ = {"a": 1.0, "b": 2.0}


def test_answers_move_intents_into_the_queue_and_the_last_batch_drops_what_got_no_answer(store_url):
    with StateStore(store_url) as store:
        queue = store.label_queue
        assert queue.intend("run-1", CRN, [(i, {**REQ, "i": i}, i % 2, 60_000, None) for i in range(5)], 1000) == 5
        queue.answered("run-1", [(0, "u0", CRN, 0, 61_100, 1100), (1, "u1", CRN, 1, 61_200, 1200)])
        assert [i.slot for i in queue.intents("run-1")] == [2, 3, 4]
        assert queue.intents()[0].request == {**REQ, "i": 2} and queue.intents()[0].due_after(5000) == 65_000
        queue.answered("run-1", [(1, "u1", CRN, 0, 99_999, 9), (3, "u3", CRN, 1, 61_300, 1300)], last=True)
        assert queue.intents() == []  # slots 2 and 4 got no answer
        rows = store.db.query("SELECT uuid, label, due_ms, answered_ms FROM pending_labels ORDER BY uuid")
        # labels are stored as JSON text (any JSON value: "Yes", 350000.0, 1)
        assert [tuple(r) for r in rows] == [
            ("u0", "0", 61_100, 1100),
            ("u1", "1", 61_200, 1200),
            ("u3", "1", 61_300, 1300),
        ]


def _ended_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_run_is_orphaned_when_its_lease_expired_or_its_process_died(store_url):
    wall = [1000.0]
    with StateStore(store_url) as store:
        leases = Leases(store.db, wall=lambda: wall[0])
        queue = LabelQueue(store.db, leases)
        host = socket.gethostname()
        runs = {
            "alive": "alive@other-engine:7:abc",
            "expired": "expired@other-engine:8:abc",
            "dead": f"dead@{host}:{_ended_pid()}:abc",
            "never": "never@other-engine:9:abc",
        }
        for name in ("alive", "expired", "dead"):
            ttl = 1_000 if name == "expired" else 600_000
            assert leases.try_acquire(run_lease(runs[name]), runs[name], ttl_ms=ttl)
        for run in runs.values():
            queue.intend(run, CRN, [(0, REQ, 1, 10, None)], 0)
        wall[0] += 2  # two seconds later: the short lease has expired
        assert sorted(queue.orphaned_runs()) == sorted([runs["expired"], runs["dead"], runs["never"]])
        intent = queue.intents(runs["dead"])[0]
        queue.resolve(runs["dead"], [(intent, "u-dead", 500)])
        assert queue.intents(runs["dead"]) == [] and leases.current(run_lease(runs["dead"])) is None
        assert store.db.query("SELECT uuid, due_ms FROM pending_labels") == [("u-dead", 510)]
        assert queue.queued(["u-dead", "u-other"]) == {"u-dead"}


def test_labels_whose_post_started_are_in_doubt_until_marked_posted_or_cleared(store_url):
    with StateStore(store_url) as store:
        queue = store.label_queue
        queue.intend("run-1", CRN, [(i, REQ, 1, 10, None) for i in range(3)], 0)
        queue.answered("run-1", [(i, f"u{i}", CRN, 1, 10 + i, i) for i in range(3)], last=True)
        assert queue.in_doubt(10) == []
        assert queue.claim(["u0", "u1", "u2"], "gone@elsewhere:1:abc", 100) == ["u0", "u1", "u2"]
        assert [d.uuid for d in queue.in_doubt(10)] == ["u0", "u1", "u2"]  # its run holds no posting lease
        assert store.label_queue.due(10**9, 10) == []  # not posted again before they are checked
        assert store.label_queue.mark_posted(["u0"], 101) == 1
        queue.clear_posting([d for d in queue.in_doubt(10) if d.uuid == "u1"])
        assert [(d.uuid, d.answered_ms) for d in queue.in_doubt(10)] == [("u2", 2)]
        assert store.label_queue.due(10**9, 10) == [("u1", 1)]  # checked: not on its record, due again


def test_a_label_is_claimed_by_one_run_and_a_live_runs_claims_are_never_in_doubt(store_url):
    """Issue 20: two runs posting at once both took the same due labels; now only the rows a run's
    update changed are its to post, and a check of posts in doubt leaves a live run's claims alone."""
    with StateStore(store_url) as store:
        queue = store.label_queue
        store.label_queue.add([(f"u{i}", CRN, 1, 10, None) for i in range(4)])
        a, b = "a@elsewhere:1:abc", "b@elsewhere:2:abc"
        with store.leases.hold(posting_lease(a), a, wait_s=0):
            assert queue.claim(["u0", "u1", "u2"], a, 100) == ["u0", "u1", "u2"]
            assert queue.claim(["u1", "u2", "u3"], b, 101) == ["u3"]  # the others are a's
            assert queue.posting_runs() == {a}
            assert [d.uuid for d in queue.in_doubt(10)] == ["u3"]  # b holds no lease: gone
        doubt = {d.uuid: d for d in queue.in_doubt(10)}  # a released its lease without marking them
        assert sorted(doubt) == ["u0", "u1", "u2", "u3"] and doubt["u0"].posting_run == a
        queue.clear_posting([doubt["u0"], doubt["u1"]])
        assert queue.claim(["u0"], b, 200) == ["u0"]
        queue.clear_posting([doubt["u0"]])  # a stale check (a's claim) does not clear b's new claim
        assert store.label_queue.due(10**9, 10) == [("u1", 1)]
        queue.release(["u1", "u3"], b)  # only b's own claims: u3 (u1 is not claimed)
        assert store.label_queue.due(10**9, 10) == [("u1", 1), ("u3", 1)]


def _intent(run: str, slot: int, created: int) -> Intent:
    return Intent(run, slot, CRN, REQ, 1, 10, None, created)


def _record(uuid: str, start: int, took: int = 7) -> dict:
    return {UUID_KEY: uuid, START_KEY: start, END_KEY: start + took}


def test_an_intent_takes_the_last_record_after_it_and_each_run_its_own():
    first, second = _intent("r1", 0, 10_000), _intent("r2", 0, 100_000)
    twins = [_intent("r3", 0, 200_000), _intent("r3", 1, 200_000)]
    records = [
        _record("before-any", 10_000 - SLACK_MS - 1),  # written before r1's intent: another prediction
        _record("r1-lost-answer", 10_500),  # a retry: the first attempt's answer was lost
        _record("r1-answered", 11_000),
        _record("r2-only", 100_200),
        _record("r3-a", 200_100),
        _record("r3-b", 200_300),
    ]
    found = _pair([first, second, *twins], records)
    assert [(i.run_id, i.slot, u, at) for i, u, at in found] == [
        ("r1", 0, "r1-answered", 11_000),
        ("r2", 0, "r2-only", 100_200),
        ("r3", 0, "r3-a", 200_100),
        ("r3", 1, "r3-b", 200_300),
    ]
    assert _pair([_intent("r4", 0, 300_000)], records) == []  # never reached the model


def test_a_found_intent_is_filed_under_its_records_start_even_when_it_ended_an_hour_later():
    """A request in flight while a rehearsal's clock jumped ends an hour after it started; its record
    is read by its start (windows, the check of a post cut short), so the label is queued under it."""
    found = _pair([_intent("r1", 0, 10_000)], [_record("across-a-jump", 10_100, took=3_600_000)])
    assert [(u, at) for _, u, at in found] == [("across-a-jump", 10_100)]
