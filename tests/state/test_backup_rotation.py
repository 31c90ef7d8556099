"""Backups the jobs take on their own: one a day by default, the newest seven kept, never at a run's expense."""

from __future__ import annotations

from monitoring.app.jobrun import run_job
from monitoring.core.errors import DataError
from monitoring.state.backup import file_problems
from monitoring.state.backup_rotation import rotate, stamped_backups
from monitoring.state.store import StateStore
from monitoring.workflows.context import Context, Outcome
from tests.dashboard.support import FixedClock, RunPlatform
from tests.project import make_project

DAY_MS = 86_400_000
T0 = 1_795_000_000_000


def test_a_backup_is_written_when_the_newest_is_a_day_old_and_only_the_newest_are_kept(tmp_path):
    with StateStore("sqlite:///var/state.db", base_dir=tmp_path) as store:
        store.record_deployment("m", "crn:d1", "crn:m", "b1", "v1", T0, "bootstrap")
        first = rotate(store.db, tmp_path, T0, DAY_MS, keep=3)
        assert first.written is not None and first.written.parent == tmp_path / "var" / "backups"
        assert file_problems(first.written) == []
        assert rotate(store.db, tmp_path, T0 + DAY_MS - 1, DAY_MS, keep=3).written is None  # not due yet
        other = tmp_path / "var" / "backups" / "notes-20200101T000000Z.db"  # another store's name: never removed
        other.write_bytes(b"x")
        manual = tmp_path / "var" / "backups" / "state-before-upgrade.db"  # not stamped: never removed
        manual.write_bytes(b"x")
        written = [rotate(store.db, tmp_path, T0 + k * DAY_MS, DAY_MS, keep=3) for k in range(1, 5)]
        assert all(r.written is not None for r in written)
        kept = [p for _, p in stamped_backups(store.db, tmp_path)]
        assert kept == [r.written for r in written[-3:]], "the three newest are kept, the older removed"
        assert written[-1].removed == (written[0].written,) and written[-1].kept == 3
        assert other.exists() and manual.exists()


def test_a_clock_moved_back_past_the_interval_backs_up_again_and_zero_means_never(tmp_path):
    with StateStore("sqlite:///var/state.db", base_dir=tmp_path) as store:
        assert rotate(store.db, tmp_path, T0, DAY_MS, keep=7).written is not None
        assert rotate(store.db, tmp_path, T0 - DAY_MS // 2, DAY_MS, keep=7).written is None
        assert rotate(store.db, tmp_path, T0 - DAY_MS, DAY_MS, keep=7).written is not None
        assert rotate(store.db, tmp_path, T0 + 10 * DAY_MS, 0, keep=7).written is None
        assert len(stamped_backups(store.db, tmp_path)) == 2


def test_a_successful_job_run_writes_the_days_backup_and_a_failing_backup_costs_a_warning(tmp_path, capsys):
    config = make_project(tmp_path)
    store = StateStore("sqlite:///var/state.db", base_dir=tmp_path)
    clock = FixedClock(T0)
    argv = ["--config", str(config), "--project-root", str(tmp_path)]

    def wiring(cfg, root):
        clock.now += DAY_MS // 4
        return Context(cfg, RunPlatform("run", clock), store, root)

    def healthy(ctx):
        return Outcome("ok", "fine")

    def broken(ctx):
        raise DataError("no labels")

    assert run_job("compute_accuracy", broken, argv, wiring=wiring) == 4
    assert stamped_backups(store.db, tmp_path) == [], "a failed run writes no backup"
    assert run_job("compute_accuracy", healthy, argv, wiring=wiring) == 0
    assert run_job("evaluate_thresholds", healthy, argv, wiring=wiring) == 0  # 6 h later: not due
    assert len(stamped_backups(store.db, tmp_path)) == 1
    out = capsys.readouterr().out
    assert "state store backed up file=" in out and "restore=" in out
    # the backup directory cannot be made: the run still succeeds, a warning says so, the VERDICT is last
    for path in (tmp_path / "var" / "backups").iterdir():
        path.unlink()
    (tmp_path / "var" / "backups").rmdir()
    (tmp_path / "var" / "backups").write_text("a file where the directory should be")
    assert run_job("compute_accuracy", healthy, argv, wiring=wiring) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "WARNING" in lines[-2] and "the scheduled state-store backup was not written" in lines[-2]
    assert "VERDICT job=compute_accuracy status=ok" in lines[-1]
    store.close()
