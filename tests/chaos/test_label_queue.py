"""The label queue under real SIGKILLs and a real lock: every answered prediction labelled exactly once.

``simulate_traffic`` runs as a real process against a real local workspace, slowed by the
workspace's standing latency so that the moments below last long enough to be hit; the test
SIGKILLs it at moments read from the stores (intents written, predictions recorded, a label
batch queued, labels being posted), or holds the state store's lock past its busy timeout. The
invariant is read from the metrics store: each prediction record of these runs carries the
label its row was drawn with (the simulation seed, drawn again), queued once and posted.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from monitoring.app.cli import main as cli
from monitoring.core.errors import EXIT_LOCKED, EXIT_NO_SPACE, EXIT_OK
from tests.chaos.label_checks import PostCounter, Watch, assert_labelled_exactly_once, field
from tests.chaos.processes import sigkill_group
from tests.chaos.recompute import assert_windows_recomputed
from tests.chaos.runs import job_process
from tests.chaos.runs import run_to_end as run_job
from tests.faults.rig import Rig
from tests.state.support import fill, lock_held, small_file_system, verdict
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

ROWS = 500  # above the queue's batch (200): a kill can fall between two batches
LATENCY = ("latency.model=delay:10ms always", "latency.metrics=delay:10ms always")
RUN_TIMEOUT_S = 240
#: The key tests run on both back ends of the state store; PostgreSQL's is a real database of a throwaway server.
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
]
#: What a PostgreSQL lock holder locks: the label queue's tables (a SQLite holder locks the whole file).
QUEUE_TABLES = "label_intents, pending_labels"


def _state_cli(rig: Rig, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli(["state", *args, "--project-root", str(rig.root), "--config", str(rig.config_path)])
    return code, out.getvalue()


@pytest.fixture(params=BACKENDS)
def state(request, rig) -> Path | str:
    """The rig's state store on the test's back end: its SQLite file, or a PostgreSQL database it moved to
    (backed up under the old ``state.url``, restored under the new one, as the runbook moves a store)."""
    if request.param == "sqlite":
        return rig.root / "var" / "state.db"
    url = request.getfixturevalue("new_pg_database")("state")
    rig.ctx.store.close()
    code, out = _state_cli(rig, "backup", "--out", str(rig.root / "move.db"))
    assert code == EXIT_OK, out
    rig.reconfigure(state={"url": url})
    code, out = _state_cli(rig, "restore", str(rig.root / "move.db"))
    assert code == EXIT_OK, out
    rig.ctx = rig.context()
    assert rig.ctx.store.db.dialect == "postgresql"
    return url


def lock_url(state: Path | str) -> str:
    return state if isinstance(state, str) else f"sqlite:///{state}"


def assert_windows_match_records(rig: Rig) -> int:
    """compute_accuracy (in process) stores windows equal to a recomputation from the raw records."""
    code, _ = rig.job("compute_accuracy")
    assert code == EXIT_OK, rig.last_log[-3000:]
    return assert_windows_recomputed(rig.ctx.store, rig.cfg, rig.ws.workspace_dir / "metrics.db", rig.ctx.artifacts_dir)


def traffic(rig: Rig):
    """``jobs/simulate_traffic.py`` as a real process (its own process group), as a CML engine starts it."""
    return job_process(rig, "simulate_traffic")


def kill_when(rig: Rig, moment: Callable[[], bool], what: str) -> None:
    """Start a traffic run and SIGKILL it as soon as ``moment()`` holds (it must not end first)."""
    with traffic(rig) as proc:
        wait_for(lambda: proc.poll() is not None or moment(), what, RUN_TIMEOUT_S)
        assert proc.poll() is None, f"the run ended before {what}:\n{proc.communicate()[0][-3000:]}"
        sigkill_group(proc.pid, what)


def run_to_end(rig: Rig) -> tuple[int, str]:
    return run_job(rig, "simulate_traffic")


def test_sigkills_at_many_points_of_a_traffic_run_lose_and_double_no_label(rig, state):
    rig.reconfigure(scenario={"rows_per_cycle": ROWS})
    rig.ws.faults.add(*LATENCY)
    watch = Watch(rig, state)
    posts = PostCounter(watch.metrics, rig.cfg.windows.label_key)
    since = rig.at(2.0)
    moments: list[tuple[str, Callable[[int], Callable[[], bool]]]] = [
        ("its labels were written as intents", lambda rec: lambda: watch.intents() > 0),
        ("30 predictions were recorded", lambda rec: lambda: watch.records() >= rec + 30),
        ("a batch of labels was queued", lambda rec: lambda: 0 < watch.intents() <= ROWS - 200),
        ("most predictions were recorded", lambda rec: lambda: watch.records() >= rec + ROWS - 150),
    ]
    for hour, (what, moment) in enumerate(moments, start=2):
        rig.at(hour + 0.05)
        kill_when(rig, moment(watch.records()), what)
    # the next run posts the last hour's labels (due by now): killed while they are being posted
    rig.at(len(moments) + 2.05)
    labelled = watch.labelled()
    kill_when(rig, lambda: watch.posting() > 0 and watch.labelled() >= labelled + 50, "labels were being posted")
    in_doubt = {r.uuid for r in rig.ctx.store.label_queue.in_doubt(10_000)}
    assert in_doubt, "the kill fell outside the posting"
    key = rig.cfg.windows.label_key
    landed = {r["predictionUuid"] for r in rig.records() if key in r["metrics"]} & in_doubt

    rig.at(len(moments) + 3.05)
    code, out = run_to_end(rig)
    assert code == EXIT_OK, out[-3000:]
    checked = [ln for ln in out.splitlines() if "posts cut short were checked" in ln]
    assert checked and int(field(checked[0], "in_doubt")) == len(in_doubt), out[-3000:]
    # each label on its record when the run died is marked posted, never posted again: every post is
    # counted as it lands. (A read of the records just after the kill is no exact count of what landed:
    # a post in flight at the kill may land after it. Under load, a request in flight at an earlier kill
    # ended after the clock jumped an hour; its label was filed under the end, and the check read by
    # the start missed it and posted it again: a found intent is filed under its record's start now.)
    posts.assert_none_twice()
    assert int(field(checked[0], "landed")) > 0 and landed
    # every label on its record at the kill is found there (posts in flight can only add to these)
    assert int(field(checked[0], "landed")) >= len(landed), out[-3000:]
    # the killed runs' predictions are labelled too: their intents were resolved by the runs after them
    assert assert_labelled_exactly_once(rig, since) >= 2 * ROWS  # the last killed run sent most of its rows
    assert assert_windows_match_records(rig) >= 6


def test_two_traffic_runs_at_once_post_each_due_label_once(rig, state):
    """Issue 20: a manual simulate-traffic beside the scheduled run: 600 labels due, the two runs
    reported 1,200 posted. Each run now claims the labels it posts (an atomic update per label) and
    a live run's claims are never taken for posts cut short."""
    due_rows = 600
    rig.reconfigure(scenario={"rows_per_cycle": due_rows})
    since = rig.at(2.0)
    code, out = run_to_end(rig)  # 600 predictions; their labels fall due half an hour later
    assert code == EXIT_OK, out[-3000:]
    rig.reconfigure(scenario={"rows_per_cycle": 20})
    rig.ws.faults.add("latency.metrics=delay:50ms always")  # posting 600 labels takes seconds: the runs overlap
    watch = Watch(rig, state)
    posts = PostCounter(watch.metrics, rig.cfg.windows.label_key)
    rig.at(3.0)
    due = watch.unposted()
    assert due >= due_rows
    with traffic(rig) as first, traffic(rig) as second:
        outs = [first.communicate(timeout=RUN_TIMEOUT_S)[0], second.communicate(timeout=RUN_TIMEOUT_S)[0]]
    assert (first.returncode, second.returncode) == (EXIT_OK, EXIT_OK), outs[0][-2000:] + outs[1][-2000:]
    reported = [int(field(verdict(out), "labels_posted")) for out in outs]
    assert sum(reported) == due, reported  # not 1,200: each label is posted by one of the runs
    assert posts.assert_none_twice() == due
    assert watch.unposted() == 40  # the two runs' own labels, not due yet
    key, queued = rig.cfg.windows.label_key, rig.pending()
    posted = {u: label for u, (label, at) in queued.items() if at is not None}
    on_records = {r["predictionUuid"]: r["metrics"][key] for r in rig.records() if key in r["metrics"]}
    assert len(posted) >= due_rows and {u: on_records.get(u) for u in posted} == posted
    assert sum(1 for r in rig.records() if r["predictionUuid"] and r["startTimeStampMs"] >= since) == due_rows + 40


def test_a_lock_held_past_the_busy_timeout_while_traffic_runs_loses_no_label(rig, state):
    rig.reconfigure(scenario={"rows_per_cycle": ROWS}, state={"busy_timeout": "1s"})
    rig.ws.faults.add(*LATENCY)
    watch = Watch(rig, state)
    since = rig.at(2.05)
    url = lock_url(state)
    before = watch.records()
    with lock_held(url, QUEUE_TABLES):  # locked before it starts: nothing is sent
        code, out = run_to_end(rig)
    assert code == EXIT_LOCKED and field(verdict(out), "exit_code") == "9", out[-3000:]
    assert watch.records() == before and watch.intents() == 0

    with traffic(rig) as proc:  # locked while it sends: answers arrive, their labels cannot be queued
        wait_for(lambda: proc.poll() is not None or watch.records() >= before + 20, "20 predictions", RUN_TIMEOUT_S)
        with lock_held(url, QUEUE_TABLES):
            out = proc.communicate(timeout=RUN_TIMEOUT_S)[0]
    assert proc.returncode == EXIT_LOCKED, out[-3000:]
    line = verdict(out)
    assert field(line, "exit_code") == "9" and int(field(line, "label_intents_kept")) > 0, line
    assert watch.intents() > 0
    said = io.StringIO()
    rig.ctx.store.close()  # the check reads the file itself: no connection of this process may hold its locks
    with contextlib.redirect_stdout(said):
        assert cli(["state", "check", "--project-root", str(rig.root), "--config", str(rig.config_path)]) == EXIT_OK
    rig.ctx = rig.context()
    assert f"{watch.intents()} intents not resolved yet (runs: 1), 0 posts in doubt" in said.getvalue()
    sent_locked = watch.records() - before  # cut short: requests not started when it failed were never sent

    rig.at(3.05)
    code, out = run_to_end(rig)
    assert code == EXIT_OK, out[-3000:]
    assert int(field(verdict(out), "labels_recovered")) > 0
    assert assert_labelled_exactly_once(rig, since) == sent_locked + ROWS
    assert assert_windows_match_records(rig) >= 3


def test_intents_of_a_live_run_are_left_alone_and_a_dead_runs_are_resolved_once(rig):
    """Resolution is by the run's lease: a run that is alive keeps its intents; one never sent is dropped."""
    queue = rig.ctx.store.label_queue
    crn = rig.live().crn
    now = rig.at(2.05)
    request = {name: 0.5 for name in rig.cfg.model.feature_names}
    live = rig.ctx.store.leases.hold("labels:alive@elsewhere:1:abc", "alive@elsewhere:1:abc", wait_s=0)
    try:
        queue.intend("alive@elsewhere:1:abc", crn, [(0, request, 1, 60_000, None)], now)
        queue.intend("dead@elsewhere:2:abc", crn, [(0, request, 0, 60_000, None)], now)
        assert queue.orphaned_runs() == ["dead@elsewhere:2:abc"]
    finally:
        live.release()
    assert sorted(queue.orphaned_runs()) == ["alive@elsewhere:1:abc", "dead@elsewhere:2:abc"]
    rig.ws.faults.clear()
    code, out = run_to_end(rig)
    assert code == EXIT_OK, out[-3000:]
    assert field(verdict(out), "labels_recovered") == "0"  # neither request was ever sent
    assert queue.intents() == []


def test_a_full_disk_after_labels_were_posted_makes_no_post_twice(rig):
    """The issue's "600 labels reach their records but are not marked posted, and the next run posts
    them again": the store's file system fills while labels are posted; the next run finds them on
    their records and posts none again."""
    rig.reconfigure(scenario={"rows_per_cycle": ROWS})
    rig.ws.faults.add(*LATENCY)
    rig.at(2.05)
    rig.ctx.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rig.ctx.store.close()
    with small_file_system(rig.root / "small", "8m") as fs:
        shutil.copy(rig.root / "var" / "state.db", fs / "state.db")
        rig.reconfigure(state={"url": "sqlite:///small/state.db"})
        watch = Watch(rig, fs / "state.db")
        code, out = run_to_end(rig)  # its labels fall due by the next hour
        assert code == EXIT_OK, out[-3000:]
        with contextlib.closing(sqlite3.connect(fs / "state.db")) as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # from here every write grows the log
        rig.at(3.05)
        labelled = watch.labelled()
        with traffic(rig) as proc:
            wait_for(
                lambda: proc.poll() is not None or (watch.posting() > 0 and watch.labelled() >= labelled + 50),
                "labels being posted",
                RUN_TIMEOUT_S,
            )
            filler = fill(fs, 4 * 1024)
            out = proc.communicate(timeout=RUN_TIMEOUT_S)[0]
        assert proc.returncode == EXIT_NO_SPACE and field(verdict(out), "exit_code") == "8", out[-3000:]
        filler.unlink()
        in_doubt = watch.posting()
        assert in_doubt > 0
        rig.at(4.05)
        code, out = run_to_end(rig)
        assert code == EXIT_OK, out[-3000:]
        checked = [ln for ln in out.splitlines() if "posts cut short were checked" in ln]
        assert checked and (field(checked[0], "in_doubt"), field(checked[0], "to_post_again")) == (str(in_doubt), "0")
        assert field(checked[0], "landed") == str(in_doubt)  # every one had landed: none was posted again
        rig.ctx = rig.context()
        try:
            assert assert_labelled_exactly_once(rig, rig.t0 + int(2.05 * 3_600_000)) >= 2 * ROWS
            assert assert_windows_match_records(rig) >= 3
        finally:
            rig.ctx.store.close()
