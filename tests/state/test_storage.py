"""A real full file system under the state store: its own error and exit code, nothing half written."""

from __future__ import annotations

import pytest

from monitoring.core.errors import EXIT_NO_SPACE, NoSpaceError
from monitoring.state.backup import write_backup
from monitoring.state.health import integrity_problems
from monitoring.state.store import StateStore
from tests.state.support import fill, small_file_system

CRN = "crn-1"


def rows(prefix: str, n: int) -> list[tuple[str, str, int, int, None]]:
    return [(f"{prefix}-{i:06d}-{'x' * 40}", CRN, i % 2, 1000 + i, None) for i in range(n)]


def test_a_full_disk_is_no_space_and_the_failed_batch_leaves_nothing(tmp_path):
    with small_file_system(tmp_path / "small", "2m") as fs:
        store = StateStore(f"sqlite:///{fs / 'state.db'}")
        try:
            store.label_queue.add(rows("kept", 200))
            filler = fill(fs, 16 * 1024)
            with pytest.raises(NoSpaceError, match=r"state store .*state.db: no space left on its file system") as err:
                store.label_queue.add(rows("big", 3000))
            assert err.value.exit_code == EXIT_NO_SPACE and err.value.where == str(fs)
            assert err.value.action.startswith(f"free space on {fs}, then re-run;")
            assert store.label_queue.counts() == {"pending": 200, "posted": 0}  # the batch rolled back whole
            filler.unlink()
            store.label_queue.add(rows("big", 3000))  # once there is room, the same write goes through
            assert store.label_queue.counts()["pending"] == 3200
            assert integrity_problems(store.db, full=True) == []
        finally:
            store.close()


def test_a_backup_onto_a_full_disk_says_so_and_leaves_no_part_file(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    store.label_queue.add(rows("u", 20_000))
    try:
        with small_file_system(tmp_path / "small", "512k") as fs:
            with pytest.raises(NoSpaceError, match=r"cannot write the backup .*backup.db: no space left") as err:
                write_backup(store.db, fs / "backup.db")
            assert err.value.where == str(fs)
            assert sorted(p.name for p in fs.iterdir()) == []
    finally:
        store.close()
