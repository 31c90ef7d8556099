"""The state store under real trouble on a real local workspace: concurrent runs, locks, a full disk, a clock
that moves back, config edited after history, and `cml-monitor state` to recover."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from monitoring.app.cli import main as cli
from monitoring.core.errors import EXIT_BUSY, EXIT_CONFIG, EXIT_LOCKED, EXIT_NO_SPACE, EXIT_OK, EXIT_STORE
from monitoring.state.aggregates import SENDING, SENT
from monitoring.workflows.accuracy import lease_name
from monitoring.workflows.traffic import post_due_labels
from tests.chaos.recompute import assert_windows_recomputed
from tests.faults.rig import HOUR, Rig
from tests.state.support import fill, lock_held, small_file_system, verdict

pytestmark = pytest.mark.slow


def fresh(rig: Rig) -> None:
    """Drop the rig's own store connection and wire again (after the store file or the config changed)."""
    rig.ctx.store.close()
    rig.ctx = rig.context()


def aggregates(rig: Rig) -> Counter:
    """Aggregate records in the metrics store, counted by (deployment, start, end)."""
    return Counter(
        (r["modelDeploymentCrn"], r["startTimeStampMs"], r["endTimeStampMs"])
        for r in rig.records()
        if r["predictionUuid"] == ""
    )


def state_cli(rig: Rig, *args: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli(["state", *args, "--project-root", str(rig.root), "--config", str(rig.config_path)])
    return code, out.getvalue()


def assert_windows_match_records(rig: Rig) -> int:
    """The stored windows equal a recomputation from the raw records (``tests/chaos/recompute.py``)."""
    metrics_db = rig.ws.workspace_dir / "metrics.db"
    return assert_windows_recomputed(rig.ctx.store, rig.cfg, metrics_db, rig.ctx.artifacts_dir)


def windows_of(rig: Rig) -> list[tuple]:
    return [(w.deployment_crn, w.start_ms, w.end_ms, w.predictions, w.labelled) for w in rig.ctx.store.windows()]


# -- one writer per model for window results ----------------------------------------------------------
def test_concurrent_compute_accuracy_runs_send_each_window_once(rig):
    """Five real processes at once (a manual run, the job, chains started together): one writes at a time."""
    rig.at(6.2)
    rig.traffic()
    rig.at(10.5)  # three windows have settled (3h label horizon) and none was sent yet
    outcomes = _five_at_once(rig)
    codes = [code for code, _ in outcomes]
    assert set(codes) <= {EXIT_OK, EXIT_BUSY} and EXIT_OK in codes, [verdict(o) for _, o in outcomes]
    for code, out in outcomes:
        line = verdict(out)
        assert (code == EXIT_OK) == ("status=ok" in line), line
    counts = aggregates(rig)
    assert counts and set(counts.values()) == {1}, counts
    fresh(rig)
    sent = {(r.deployment_crn, r.start_ms, r.end_ms) for r in rig.ctx.store.aggregates.rows(state=SENT)}
    assert sent == set(counts)
    assert rig.ctx.store.leases.current(lease_name(rig.cfg.model.name)) is None  # every run released it
    assert assert_windows_match_records(rig) >= 4


def _five_at_once(rig: Rig) -> list[tuple[int, str]]:
    env = {**os.environ, **rig.ws.engine_env()}
    procs = [
        subprocess.Popen(
            [sys.executable, "jobs/compute_accuracy.py", "--project-root", str(rig.root)],
            cwd=rig.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(5)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    return [(p.returncode, out) for p, out in zip(procs, outs)]


def test_a_run_that_finds_the_lease_held_exits_busy_and_sends_nothing(rig):
    rig.reconfigure(state={"busy_timeout": "1s"})
    rig.at(5.5)
    fresh(rig)
    store = rig.ctx.store
    assert store.leases.try_acquire(lease_name(rig.cfg.model.name), "cml-run-7@other-engine:12:abc", ttl_ms=HOUR)
    before = (windows_of(rig), store.watermark(rig.live().crn))
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_BUSY and fields["status"] == "failed", rig.last_log[-2000:]
    assert "is being done by run cml-run-7@other-engine:12:abc" in fields["summary"]
    assert "waited 1s and did nothing" in fields["summary"]
    assert not aggregates(rig) and (windows_of(rig), store.watermark(rig.live().crn)) == before


def test_a_send_cut_short_by_a_crash_is_checked_before_it_is_repeated(rig):
    """A run killed between recording its intent and marking the window sent: the next run reads the
    metrics store first, so a window is neither lost nor sent twice."""
    now = rig.at(5.5)
    post_due_labels(rig.ctx, now, rig.cfg.windows.label_key)  # else the template's last window waits for them
    code, _ = rig.job("compute_accuracy")
    assert code == EXIT_OK
    crn = rig.live().crn
    sent = aggregates(rig)
    assert len(sent) >= 2 and set(sent.values()) == {1}
    second = sorted(sent)[1]
    metrics_db = sqlite3.connect(rig.ws.workspace_dir / "metrics.db")
    with metrics_db:  # the second window's call never reached CML
        metrics_db.execute(
            "DELETE FROM model_metrics WHERE prediction_uuid = '' AND deployment_crn = ? AND start_ms = ?",
            (crn, second[1]),
        )
    metrics_db.close()
    store = rig.ctx.store
    store.db.execute("UPDATE aggregates_sent SET state = ?, run_id = 'killed-run', sent_ms = NULL", (SENDING,))
    store.db.execute("DELETE FROM watermarks")  # killed before its watermark was stored
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK, rig.last_log[-2000:]
    assert fields["aggregates_tracked"] == "1"  # the lost one only
    assert aggregates(rig) == sent
    assert {r.state for r in store.aggregates.rows()} == {SENT}
    assert "aggregate of an interrupted run had landed" in rig.last_log
    assert assert_windows_match_records(rig) >= 3


# -- locks and a full disk -----------------------------------------------------------------------------
def test_a_store_locked_past_the_busy_timeout_fails_9_and_writes_nothing(rig):
    rig.reconfigure(state={"busy_timeout": "1s"})
    rig.at(2.05)
    fresh(rig)
    decisions = len(rig.ctx.store.list_decisions(limit=1000))
    with lock_held(f"sqlite:///{rig.root / 'var' / 'state.db'}"):
        for job in ("evaluate_thresholds", "compute_accuracy"):
            code, fields = rig.job(job)
            assert code == EXIT_LOCKED and fields["exit_code"] == "9", rig.last_log[-2000:]
            assert "stayed locked by another process for more than 1s" in fields["summary"]
            assert "find the process holding" in rig.last_log.splitlines()[-1]
    assert len(rig.ctx.store.list_decisions(limit=1000)) == decisions
    assert rig.job("compute_accuracy")[0] == EXIT_OK and rig.job("evaluate_thresholds")[0] == EXIT_OK


def test_a_job_on_a_full_disk_fails_8_and_claims_nothing(rig):
    rig.at(2.05)
    rig.ctx.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    rig.ctx.store.close()
    with small_file_system(rig.root / "small", "2m") as fs:
        shutil.copy(rig.root / "var" / "state.db", fs / "state.db")
        rig.reconfigure(state={"url": "sqlite:///small/state.db"})
        fresh(rig)
        decisions = len(rig.ctx.store.list_decisions(limit=1000))
        rig.ctx.store.close()
        filler = fill(fs, 4 * 1024)
        code, fields = rig.job("evaluate_thresholds")
        assert code == EXIT_NO_SPACE and fields["exit_code"] == "8", rig.last_log[-2000:]
        assert f'action="free space on {fs}, then re-run;' in rig.last_log.splitlines()[-1]
        filler.unlink()
        fresh(rig)
        assert len(rig.ctx.store.list_decisions(limit=1000)) == decisions  # nothing reported done was done
        code, fields = rig.job("evaluate_thresholds")
        assert code == EXIT_OK and len(rig.ctx.store.list_decisions(limit=1000)) == decisions + 1
        rig.ctx.store.close()


# -- time and config ------------------------------------------------------------------------------------
def test_a_clock_moved_back_keeps_settled_windows_and_redeploy_acts_on_the_newest_decision(rig):
    rig.reconfigure(thresholds={"policies": [{"kind": "min_labelled", "min": 1}], "cooldown": "0s"})
    rig.at(5.5)
    assert rig.job("compute_accuracy")[0] == EXIT_OK
    settled = windows_of(rig)
    code, later = rig.job("evaluate_thresholds")
    assert code == EXIT_OK
    rig.at(1.2)  # 4h 18m back, past the 3h label horizon: traffic lands in settled windows
    assert rig.job("simulate_traffic")[0] == EXIT_OK
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK and abs(int(fields["clock_moved_back_s"]) - int(4.3 * 3600)) < 120
    assert re.match(r"the clock moved back 4h 1[78]m \(now ", fields["summary"]), fields["summary"]
    assert "settled windows kept, none rewritten with less data" in fields["summary"]
    assert "check the engine's clock" in rig.last_log.splitlines()[-1]
    assert windows_of(rig) == settled
    code, earlier_in_time = rig.job("evaluate_thresholds")
    assert code == EXIT_OK
    newest = earlier_in_time["decision"]
    assert rig.ctx.store.decision(newest).created_ms < rig.ctx.store.decision(later["decision"]).created_ms
    code, fields = rig.job("redeploy")
    assert code == EXIT_OK and fields["decision"] == newest, rig.last_log[-2000:]
    assert all(w[1] % HOUR == 0 and w[2] - w[1] == HOUR for w in windows_of(rig))  # the fixed grid


def test_a_reading_with_less_data_never_replaces_a_stored_window(rig):
    """Records vanish from the metrics store (retention, a restored copy): stored windows keep theirs."""
    rig.at(2.05)
    assert rig.job("compute_accuracy")[0] == EXIT_OK
    before = windows_of(rig)
    metrics_db = sqlite3.connect(rig.ws.workspace_dir / "metrics.db")
    with metrics_db:
        metrics_db.execute(
            "DELETE FROM model_metrics WHERE id IN (SELECT id FROM model_metrics WHERE prediction_uuid <> '' "
            "AND start_ms >= ? LIMIT 50)",
            (before[-1][1],),
        )
    metrics_db.close()
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK and fields["windows_kept"] == "1", rig.last_log[-2000:]
    assert windows_of(rig) == before
    assert "stored window kept: the new reading has less data" in rig.last_log


@pytest.mark.parametrize(
    ("section", "change", "said"),
    [
        ("windows", {"length": "30m"}, "windows.length changed from 1h to 30m after history exists"),
        ("model", {"name": "telco-renamed"}, "model.name changed from 'telco-cell-tower-failure' to 'telco-renamed'"),
        (
            "platform",
            {"local": {"metrics_url": "sqlite:///.cml-local/moved.db"}},
            "platform.local.metrics_url changed after history exists",
        ),
        ("state", {"url": "sqlite:///var/moved.db"}, "state.url changed from sqlite:///var/state.db to"),
    ],
    ids=["windows.length", "model.name", "metrics_url", "state.url"],
)
def test_config_edited_after_history_is_refused_by_every_job(rig, section, change, said):
    rig.reconfigure(**{section: change})
    for job in ("simulate_traffic", "compute_accuracy", "evaluate_thresholds", "redeploy"):
        code, fields = rig.job(job)
        assert code == EXIT_CONFIG and said in fields["summary"], (job, rig.last_log[-1500:])
        assert " back" in rig.last_log.splitlines()[-1]  # the action says how to go back (or rebuild)


# -- cml-monitor state -----------------------------------------------------------------------------------
def test_state_check_backup_and_restore(rig):
    rig.ctx.store.close()  # the check reads the file itself, as its own process does in production
    code, out = state_cli(rig, "check")
    assert code == EXIT_OK and "healthy" in out and "1 deployments" in out, out
    code, out = state_cli(rig, "backup", "--out", str(rig.root / "b1.db"))
    assert code == EXIT_OK and "integrity ok" in out, out
    fresh(rig)
    before = len(rig.ctx.store.list_decisions(limit=1000))
    rig.at(2.05)
    assert rig.job("evaluate_thresholds")[0] == EXIT_OK
    fresh(rig)
    assert len(rig.ctx.store.list_decisions(limit=1000)) == before + 1
    rig.ctx.store.close()
    damaged = rig.root / "damaged.db"
    damaged.write_bytes(b"garbage" + (rig.root / "b1.db").read_bytes()[7:])
    code, out = state_cli(rig, "restore", str(damaged))
    assert code == EXIT_STORE and "is damaged" in out and "choose another backup" in out, out
    code, out = state_cli(rig, "restore", str(rig.root / "b1.db"))
    assert code == EXIT_OK and "the store it replaced:" in out, out
    fresh(rig)
    assert len(rig.ctx.store.list_decisions(limit=1000)) == before
    assert list((rig.root / "var").glob("state.db.before-restore-*"))
    assert state_cli(rig, "check")[0] == EXIT_OK


def test_restoring_an_older_backup_sends_no_aggregate_twice_and_loses_or_doubles_no_label(rig):
    """What happened after the backup is read back from the metrics store on restore: aggregates sent
    since count as sent, labels posted since are found on their records before any post, and the
    labels of predictions made since are queued again from the simulation seed."""
    rig.at(1.6)
    rig.settle()
    rig.at(5.5)
    assert rig.job("compute_accuracy")[0] == EXIT_OK
    rig.at(6.2)
    assert rig.job("simulate_traffic")[0] == EXIT_OK  # 200 labels queued, due at 6.7
    rig.ctx.store.close()
    assert state_cli(rig, "backup", "--out", str(rig.root / "older.db"))[0] == EXIT_OK
    fresh(rig)
    assert rig.settle() == 200  # posted after the backup
    rig.at(7.2)
    assert rig.job("simulate_traffic")[0] == EXIT_OK  # 200 more predictions, their labels queued after the backup
    since_backup = {u for u, (_, posted) in rig.pending().items() if posted is None}
    assert len(since_backup) == 200
    expected = {u: label for u, (label, _) in rig.pending().items()}
    rig.at(10.5)
    assert rig.job("compute_accuracy")[0] == EXIT_OK  # sends the windows settled since
    sent = aggregates(rig)
    assert set(sent.values()) == {1}
    rig.ctx.store.close()
    code, out = state_cli(rig, "restore", str(rig.root / "older.db"))
    assert code == EXIT_OK and f"{len(sent)} aggregates found in CML recorded as sent" in out, out
    assert "200 due labels not marked posted will be checked" in out, out
    assert "200 labels of predictions made since the backup queued from the simulation seed" in out, out
    fresh(rig)
    assert {u: label for u, (label, _) in rig.pending().items()} == expected, "the seed gave other labels"
    posts: list[str] = []
    post = rig.ctx.platform.metrics.post_labels
    rig.ctx.platform.metrics.post_labels = lambda labels, *a: posts.extend(u for u, _ in labels) or post(labels, *a)
    assert rig.job("compute_accuracy")[0] == EXIT_OK
    assert aggregates(rig) == sent, "an aggregate was sent again after the restore"
    rig.settle()
    assert sorted(posts) == sorted(since_backup), "posted twice, or not posted"
    assert all(posted is not None for _, posted in rig.pending().values())


def test_check_names_the_damage_and_restore_refuses_another_models_backup(rig, tmp_path):
    rig.ctx.store.close()
    other = rig.root / "other.db"
    shutil.copy(rig.root / "var" / "state.db", other)
    db = sqlite3.connect(other)
    with db:
        db.execute("UPDATE store_identity SET model = 'someone-else'")
    db.close()
    code, out = state_cli(rig, "restore", str(other))
    assert code == EXIT_STORE and "belongs to model someone-else" in out, out
    (rig.root / "var" / "state.db").write_bytes(b"garbage!" * 100)
    code, out = state_cli(rig, "check")
    assert code == EXIT_STORE and "is damaged: garbage in its header" in out, out


def test_rebuild_after_the_store_was_deleted_loses_no_label_and_resends_nothing(rig):
    rig.at(1.6)
    rig.settle()  # the template's second cycle is labelled before its window settles
    rig.at(5.5)
    assert rig.job("compute_accuracy")[0] == EXIT_OK
    rig.at(6.2)
    assert rig.job("simulate_traffic")[0] == EXIT_OK  # 200 labels queued, due at 6.7
    store = rig.ctx.store
    deployments = [d.deployment_crn for d in store.deployments(rig.cfg.model.name)]
    unposted = {u: lab for u, (lab, posted) in rig.pending().items() if posted is None}
    assert len(unposted) == 200
    windows, sent = windows_of(rig), aggregates(rig)
    store.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{rig.root / 'var' / 'state.db'}{suffix}").unlink(missing_ok=True)
    assert rig.job("compute_accuracy")[0] == EXIT_STORE  # never silently recreated
    code, out = state_cli(rig, "rebuild")
    assert code == EXIT_OK and "200 labels queued from the simulation seed" in out, out
    fresh(rig)
    store = rig.ctx.store
    assert [d.deployment_crn for d in store.deployments(rig.cfg.model.name)] == deployments
    rebuilt = {u: lab for u, (lab, _) in rig.pending().items()}
    assert rebuilt == unposted
    assert windows_of(rig)[: len(windows)] == windows
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK and fields["aggregates_tracked"] == "0"  # all were in CML already
    assert aggregates(rig) == sent
    rig.settle()  # the rebuilt queue is posted: each answered prediction has exactly its one label
    key = rig.cfg.windows.label_key
    labelled = {r["predictionUuid"] for r in rig.records() if r["predictionUuid"] and key in r["metrics"]}
    assert labelled == set(rig.answered)


def test_rebuild_migrates_history_to_a_new_window_length(rig):
    rig.reconfigure(windows={"length": "30m"})
    assert rig.job("compute_accuracy")[0] == EXIT_CONFIG
    code, out = state_cli(rig, "rebuild")
    assert code == EXIT_OK, out
    fresh(rig)
    rig.at(5.5)
    code, fields = rig.job("compute_accuracy")
    assert code == EXIT_OK, rig.last_log[-2000:]
    half = HOUR // 2
    assert windows_of(rig) and all(w[1] % half == 0 and w[2] - w[1] == half for w in windows_of(rig))


def test_a_store_moves_to_a_new_url_by_backup_and_restore(rig):
    """The way the refusal of a changed `state.url` points to: back up under the old URL, restore under the new."""
    rig.ctx.store.close()
    assert state_cli(rig, "backup", "--out", str(rig.root / "move.db"))[0] == EXIT_OK
    rig.reconfigure(state={"url": "sqlite:///var/moved.db"})
    assert rig.job("evaluate_thresholds")[0] == EXIT_CONFIG
    code, out = state_cli(rig, "restore", str(rig.root / "move.db"))
    assert code == EXIT_OK and "no store was replaced" in out, out
    rig.at(2.05)
    assert rig.job("evaluate_thresholds")[0] == EXIT_OK, rig.last_log[-2000:]
    assert state_cli(rig, "check")[0] == EXIT_OK
