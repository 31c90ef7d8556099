"""Every job, run as a real process, refuses a damaged or vanished store the same way, touching nothing."""

from __future__ import annotations

import pytest

from monitoring.core.errors import EXIT_STORE
from tests.state.support import JOB_SCRIPTS, one_verdict, run_jobs
from tests.state.test_health import garbage_header, garbage_middle, opened, project, truncated, with_history

pytestmark = pytest.mark.slow


def vanished(path):
    path.unlink()


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (garbage_header, "is damaged: garbage in its header"),
        (truncated, "is damaged: "),
        (garbage_middle, "is damaged: "),
        (vanished, "is missing or empty, but model 'telco-cell-tower-failure' had one here"),
    ],
    ids=["garbage-header", "truncated", "garbage-middle", "vanished"],
)
def test_every_job_refuses_with_exit_7_and_one_message(tmp_path, damage, said):
    root = tmp_path / "p"
    cfg = project(root)
    db_file = with_history(root, cfg)
    damage(db_file)
    before = db_file.read_bytes() if db_file.exists() else None
    results = run_jobs(root)
    assert sorted(results) == sorted(JOB_SCRIPTS)
    line = one_verdict(results, EXIT_STORE)
    assert "status=failed exit_code=7 error=StoreError" in line and said in line
    assert "restore FILE" in line and "state rebuild" in line or "state check" in line
    assert (db_file.read_bytes() if db_file.exists() else None) == before  # nothing repaired, nothing created
    assert not (root / ".cml-local").exists()  # refused before the platform was reached


def test_the_jobs_run_on_again_once_the_store_is_restored(tmp_path):
    """The refusal is not a dead end: the same store, intact, opens again (as after `state restore`)."""
    root = tmp_path / "p"
    cfg = project(root)
    db_file = with_history(root, cfg)
    good = db_file.read_bytes()
    garbage_header(db_file)
    code, _ = run_jobs(root, ("compute_accuracy",))["compute_accuracy"]
    assert code == EXIT_STORE
    db_file.write_bytes(good)
    with opened(root, cfg) as store:
        assert store.label_queue.counts()["pending"] == 300
