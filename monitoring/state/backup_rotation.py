"""Backups the jobs take on their own: one per ``state.backup_every``, the newest ``state.backup_keep`` kept."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from monitoring.core.db import Database
from monitoring.state.backup import default_backup_path, write_backup

#: ``<store name>-20261129T101500Z.db``: the names ``default_backup_path`` gives (also to ``state backup``).
_STAMPED = re.compile(r"^(?P<stem>.+)-(?P<stamp>\d{8}T\d{6}Z)\.db$")


@dataclass(frozen=True)
class Rotation:
    """What one rotation did: the backup written (None when none was due) and the old ones removed."""

    written: Path | None
    removed: tuple[Path, ...] = ()
    kept: int = 0


def _stamp_ms(text: str) -> int:
    return int(datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc).timestamp() * 1000)


def stamped_backups(db: Database, project_root: Path) -> list[tuple[int, Path]]:
    """The store's stamped backups in its backup directory, oldest first, with their stamps in ms."""
    sample = default_backup_path(db, project_root, 0)
    match = _STAMPED.match(sample.name)
    assert match is not None, sample.name  # default_backup_path names it so
    stem = match.group("stem")
    if not sample.parent.is_dir():
        return []
    found = []
    for path in sample.parent.iterdir():
        match = _STAMPED.match(path.name)
        if match and match.group("stem") == stem and path.is_file():
            found.append((_stamp_ms(match.group("stamp")), path))
    return sorted(found)


def rotate(db: Database, project_root: Path, now_ms: int, every_ms: int, keep: int) -> Rotation:
    """Write a backup when the newest is ``every_ms`` old (or stamped that far ahead: the clock moved
    back), then remove all but the newest ``keep`` stamped backups.

    Args:
        db: the store.
        project_root: the project (a PostgreSQL store's backups go under its ``var/backups``).
        now_ms: the clock's time, which stamps the file.
        every_ms: how often; 0 never.
        keep: stamped backups kept after a new one is written (at least 1).

    Raises:
        NoSpaceError, StoreError: from ``write_backup``; nothing is removed then.
    """
    existing = stamped_backups(db, project_root)
    if every_ms <= 0 or (existing and abs(now_ms - existing[-1][0]) < every_ms):
        return Rotation(None, kept=len(existing))
    written = write_backup(db, default_backup_path(db, project_root, now_ms))
    paths = [p for _, p in stamped_backups(db, project_root)]
    old = tuple(p for p in paths[: max(0, len(paths) - keep)] if p != written)
    for path in old:
        path.unlink(missing_ok=True)
    return Rotation(written, old, len(paths) - len(old))
