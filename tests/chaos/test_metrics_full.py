"""The workspace's model metrics store on a real small file system that fills up mid-traffic.

The store's SQLite file (``W/metrics.db``) lives on a 4 MB tmpfs (``W/metrics.db`` is a symbolic
link to it, so the configured metrics store is unchanged); a filler file takes the free space while
``simulate_traffic`` runs as a real process. Then every job meets the full store, space is freed,
and the jobs run again. The invariants are read from the stores: every answered prediction ends
labelled exactly once, no window is stored or sent with fewer labels than its records hold, every
run ends with a documented exit code and a VERDICT, and the store works again without a restart.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import pytest

from localcml.core.errors import NoSpaceError
from localcml.metrics.store import MetricsStore
from monitoring.core.errors import EXIT_OK, EXIT_PLATFORM
from monitoring.state.aggregates import HELD, SENT
from monitoring.workflows.traffic import post_due_labels
from tests.chaos.test_label_queue import (
    LATENCY,
    RUN_TIMEOUT_S,
    Watch,
    assert_labelled_exactly_once,
    field,
    run_to_end,
    traffic,
)
from tests.faults.rig import rig_from
from tests.state.support import fill, small_file_system, verdict
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

ROWS = 400
#: What the filler leaves free: less than a page of the store and its log.
LEAVE_BYTES = 2 * 1024


@pytest.fixture
def full_rig(template, tmp_path):
    """A copy of the fault matrix's project whose metrics store lives on a 4 MB tmpfs."""
    with small_file_system(tmp_path / "metrics-fs", "4m") as fs:

        def move_store(dest: Path) -> None:
            db = dest / ".cml-local" / "metrics.db"
            for suffix in ("", "-wal", "-shm"):
                side = db.with_name(db.name + suffix)
                if side.exists():
                    shutil.move(side, fs / side.name)
            db.symlink_to(fs / "metrics.db")

        with rig_from(template, tmp_path / "project", before_start=move_store) as rig:
            rig.fs = fs
            yield rig


def window_counts(rig, crn: str, start_ms: int, end_ms: int) -> tuple[int, int]:
    """(predictions, labelled) the metrics store's records hold for one window."""
    key = rig.cfg.windows.label_key
    records = [
        r
        for r in rig.records()
        if r["predictionUuid"] and r["modelDeploymentCrn"] == crn and start_ms <= r["startTimeStampMs"] < end_ms
    ]
    return len(records), sum(1 for r in records if key in r["metrics"])


def aggregates_of(rig, crn: str) -> dict[int, list[dict]]:
    found: dict[int, list[dict]] = {}
    for r in rig.records():
        if r["predictionUuid"] == "" and r["modelDeploymentCrn"] == crn:
            found.setdefault(r["startTimeStampMs"], []).append(r["metrics"])
    return found


def assert_windows_hold_their_records(rig, crn: str) -> None:
    """No stored window has fewer predictions or labels than its records hold (the issue's 601/0 vs 50)."""
    for w in rig.ctx.store.windows(deployment_crn=crn):
        predictions, labelled = window_counts(rig, crn, w.start_ms, w.end_ms)
        assert (w.predictions, w.labelled) == (predictions, labelled), (
            f"window {w.start_ms}: stored {w.predictions}/{w.labelled}, records hold {predictions}/{labelled}"
        )


def test_the_store_full_mid_traffic_loses_no_label_and_converges_once_space_is_freed(full_rig):
    rig = full_rig
    rig.reconfigure(scenario={"rows_per_cycle": ROWS}, windows={"label_horizon": "30m"})
    rig.ws.faults.add(*LATENCY)
    watch = Watch(rig)
    crn, key = rig.live().crn, rig.cfg.windows.label_key
    window = rig.cfg.windows.length_ms

    # before: the template's labels posted and its windows settled and sent
    now = rig.at(2.6)
    post_due_labels(rig.ctx, now, key)
    assert rig.job("compute_accuracy")[0] == EXIT_OK
    since = rig.at(2.65)

    # A: the file system fills while traffic runs; the replica cannot record, the cycle stops (exit 3)
    before = watch.records()
    with traffic(rig) as proc:
        wait_for(lambda: proc.poll() is not None or watch.records() >= before + 40, "40 predictions", RUN_TIMEOUT_S)
        filler = fill(rig.fs, LEAVE_BYTES)
        out = proc.communicate(timeout=RUN_TIMEOUT_S)[0]
    line = verdict(out)
    assert proc.returncode == EXIT_PLATFORM and field(line, "exit_code") == "3", out[-3000:]
    assert f"model metrics store out of space: no space left on {rig.fs}" in line
    assert "the prediction's metrics record was not written" in line
    assert "the model metrics store" in line.split("action=", 1)[1].split(" -- ")[0]
    answered = int(field(line, "predictions"))
    assert 0 < answered < ROWS and watch.queued() >= answered
    replica_logs = "".join(p.read_text() for p in rig.ws.workspace_dir.glob("deployments/*/replica-*.log"))
    assert "prediction not recorded" in replica_logs and "Traceback" not in replica_logs
    assert rig.ws.api_key not in out + replica_logs and rig.ws.model_api_key not in out + replica_logs

    # B: still full an hour later: A's labels cannot be posted; they stay queued, the run fails for them
    rig.at(3.2)
    code, out = run_to_end(rig)
    line = verdict(out)
    assert code == EXIT_PLATFORM and field(line, "exit_code") == "3", out[-3000:]
    not_posted = int(field(line, "labels_not_posted"))
    assert not_posted > 0 and not_posted + int(field(line, "labels_posted")) == answered, line
    assert "could not be posted (the model metrics store failed: " in line and "stay queued" in line
    assert "ground truth posts stopped: the metrics store keeps failing" in out  # not one retry budget per label
    unposted = rig.ctx.store.db.query_one("SELECT COUNT(*) FROM pending_labels WHERE posted_ms IS NULL")[0]
    assert unposted >= not_posted

    # compute_accuracy on the full store: A's window is stored as its records are (no labels yet) and
    # settles, but its aggregate is held for the queued labels: never sent with fewer labels than they hold
    a_start = since - since % window
    rig.at(3.6)
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK, rig.last_log[-3000:]
    assert "settled window held until its queued labels are posted" in rig.last_log
    assert_windows_hold_their_records(rig, crn)
    held = {r.start_ms: r.state for r in rig.ctx.store.aggregates.rows(crn)}
    assert held[a_start] == HELD and a_start not in aggregates_of(rig, crn)

    # space freed: no restart; the next runs post every queued label, the window is re-read and sent once
    filler.unlink()
    rig.at(4.2)
    code, out = run_to_end(rig)
    assert code == EXIT_OK and field(verdict(out), "labels_waiting") == "0", out[-3000:]
    rig.at(4.25)
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK, rig.last_log[-3000:]
    assert_windows_hold_their_records(rig, crn)
    stored = next(w for w in rig.ctx.store.windows(deployment_crn=crn) if w.start_ms == a_start)
    assert stored.labelled == window_counts(rig, crn, a_start, a_start + window)[1] >= answered
    sent = aggregates_of(rig, crn)[a_start]
    assert len(sent) == 1 and sent[0]["labelled"] == stored.labelled
    assert {r.start_ms: r.state for r in rig.ctx.store.aggregates.rows(crn)}[a_start] == SENT
    assert assert_labelled_exactly_once(rig, since) >= answered + ROWS


def test_a_full_store_refuses_a_write_naming_its_file_system_and_takes_the_next_one_once_freed(tmp_path):
    """The store itself: ``NoSpaceError`` naming the mount, nothing written, the same connections work after."""
    with small_file_system(tmp_path / "fs", "1m") as fs:
        store = MetricsStore(f"sqlite:///{fs / 'metrics.db'}")
        try:
            metrics = {"input": "x" * 1500}
            for i in range(20):
                store.track_prediction("dep", "build", "model", f"p{i}", i, i + 1, metrics)
            filler = fill(fs, LEAVE_BYTES)
            with pytest.raises(
                NoSpaceError,
                match=rf"out of space: no space left on {fs}; could not record prediction p\d+, nothing was written",
            ):
                for i in range(20, 400):
                    store.track_prediction("dep", "build", "model", f"p{i}", i, i + 1, metrics)
            written = store.count()
            with pytest.raises(NoSpaceError):
                store.track_delayed({"final_label": 1}, "p0")
            assert "final_label" not in store.read("dep")[0]["metrics"]
            filler.unlink()
            store.track_delayed({"final_label": 1}, "p0")
            store.track_prediction("dep", "build", "model", "after", 500, 501, metrics)
            assert store.count() == written + 1 and store.read("dep")[0]["metrics"]["final_label"] == 1
        finally:
            store.close()
        with contextlib.closing(sqlite3.connect(fs / "metrics.db")) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_aggregates_that_meet_a_full_store_fail_the_run_clearly_and_are_sent_once_after(full_rig):
    rig = full_rig
    rig.reconfigure(windows={"label_horizon": "30m"})
    crn = rig.live().crn
    now = rig.at(2.6)
    post_due_labels(rig.ctx, now, rig.cfg.windows.label_key)  # the template's windows settle with all labels
    with contextlib.closing(sqlite3.connect(rig.fs / "metrics.db")) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # from here every write must grow the log
    filler = fill(rig.fs, LEAVE_BYTES)
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_PLATFORM and fields["exit_code"] == "3", rig.last_log[-3000:]
    assert f"HTTP 507: model metrics store out of space: no space left on {rig.fs}" in fields["summary"]
    assert "the next run checks whether this aggregate landed" in fields["action"]
    assert aggregates_of(rig, crn) == {} and {r.state for r in rig.ctx.store.aggregates.rows(crn)} == {"sending"}
    assert_windows_hold_their_records(rig, crn)  # stored from a whole reading before the send failed

    filler.unlink()
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK, rig.last_log[-3000:]
    assert "aggregate of an interrupted run had landed" not in rig.last_log  # checked, found missing, sent
    sent, ledger = aggregates_of(rig, crn), rig.ctx.store.aggregates.rows(crn)
    assert len(ledger) >= 2 and {r.state for r in ledger} == {SENT}
    assert sorted(sent) == [r.start_ms for r in ledger] and all(len(v) == 1 for v in sent.values())
