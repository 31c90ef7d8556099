"""The model metrics store is locked or unavailable for a while: labels wait, nothing is lost or doubled."""

from __future__ import annotations

import sqlite3
import threading
import time

from monitoring.core.errors import EXIT_PLATFORM
from tests.faults.invariants import assert_invariants

LOCK_SECONDS = 1.5


def test_recording_and_posting_fail_for_a_while_and_are_retried(rig):
    """The replica cannot record (store unavailable): 500, the retry is answered. Label posts that meet
    a locked store are retried later in the same run."""
    rig.at(1.6)  # the template's second cycle is due now
    due = sum(1 for _, posted in rig.pending().values() if posted is None)
    rig.ws.inject("metrics.model_metrics=unavailable x5", "metrics.track_delayed_metrics=locked x30")
    code, verdict = rig.job("simulate_traffic")
    assert code == 0 and verdict["predictions"] == "200" and verdict["failed"] == "0"
    assert int(verdict["labels_posted"]) == due and verdict["labels_waiting"] == "0"
    assert "ground truth not posted, will retry next run" in rig.last_log and "database is locked" in rig.last_log
    assert rig.ws.faults.fired("metrics.model_metrics") == 5
    assert rig.ws.faults.fired("metrics.track_delayed_metrics") == 30
    assert_invariants(rig)


def test_labels_wait_for_the_next_run_while_the_store_stays_locked(rig):
    """Posts that fail stay queued, and the run does not report success for them (exit 3)."""
    rig.at(1.6)
    due = sum(1 for _, posted in rig.pending().values() if posted is None)
    rig.ws.inject("metrics.track_delayed_metrics=locked always")
    code, verdict = rig.job("simulate_traffic")
    assert code == EXIT_PLATFORM and verdict["status"] == "failed" and verdict["predictions"] == "200"
    assert verdict["labels_posted"] == "0" and int(verdict["labels_not_posted"]) == due
    assert f"{due} due labels could not be posted (the model metrics store failed: " in verdict["summary"]
    assert "database is locked" in verdict["summary"] and "stay queued" in verdict["action"]
    assert sum(1 for _, posted in rig.pending().values() if posted is None) == due + 200  # none marked posted
    rig.ws.faults.clear()
    rig.at(2.6)
    code, verdict = rig.job("simulate_traffic")
    assert code == 0 and int(verdict["labels_posted"]) == due + 200 and verdict["labels_waiting"] == "0"
    assert_invariants(rig)


def test_reading_metrics_unavailable_fails_compute_accuracy_clearly_and_changes_nothing(rig):
    rig.at(2.05)
    store = rig.ctx.store
    before = ([(w.deployment_crn, w.start_ms, w.labelled) for w in store.windows()], store.watermark(rig.live().crn))
    rig.ws.inject("metrics.read_metrics=unavailable always")
    code, verdict = rig.job("compute_accuracy")
    assert code == EXIT_PLATFORM and verdict["status"] == "failed"
    assert "read metrics of deployment" in verdict["summary"] and "unavailable" in verdict["summary"]
    after = ([(w.deployment_crn, w.start_ms, w.labelled) for w in store.windows()], store.watermark(rig.live().crn))
    assert after == before
    rig.ws.faults.clear()
    code, verdict = rig.job("compute_accuracy")
    assert code == 0 and verdict["status"] == "ok"
    assert store.watermark(rig.live().crn) > before[1]
    assert_invariants(rig)


def test_store_really_locked_for_a_while_slows_traffic_but_loses_nothing(rig):
    """A writer holds SQLite's write lock on metrics.db; replicas and label posts wait for it."""
    rig.at(1.6)
    held = threading.Event()

    def hold_lock() -> None:
        conn = sqlite3.connect(rig.ws.workspace_dir / "metrics.db", isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            held.set()
            time.sleep(LOCK_SECONDS)  # the fault itself: a lock held in real time, not the clock
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    locker = threading.Thread(target=hold_lock)
    locker.start()
    held.wait(10)
    started = time.monotonic()
    outcome = rig.traffic()
    locker.join()
    assert time.monotonic() - started >= LOCK_SECONDS * 0.8
    assert outcome.fields["predictions"] == 200 and outcome.fields["failed"] == 0
    assert_invariants(rig)
