"""Backups of the state store, always one self-contained SQLite file, and restoring one.

A SQLite store is copied with SQLite's online backup API (a consistent snapshot while jobs
write). A PostgreSQL store is copied row by row (a logical copy in one repeatable-read
transaction; no ``pg_dump`` needed) into a SQLite file of the same schema, and restored the
same way. So one backup format serves both backends, and ``state check`` can inspect any backup.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from monitoring.core.db import SQLITE_HEADER, Database, mount_point, sqlite_url
from monitoring.core.errors import NoSpaceError, StoreError
from monitoring.state.migrations import table_columns

#: Rows moved per statement in a logical copy.
COPY_BATCH = 5000
#: Tables whose ``seq`` column a PostgreSQL sequence feeds (reset after a restore).
SEQUENCED = ("deployments", "decisions")


def stamp(now_ms: int) -> str:
    """``20261129T101500Z`` for file names."""
    return datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def default_backup_path(db: Database, project_root: Path, now_ms: int) -> Path:
    """``<store dir>/backups/<store name>-<UTC stamp>.db`` (PostgreSQL: ``var/backups/state-<stamp>.db``)."""
    if db.path is not None:
        return db.path.parent / "backups" / f"{db.path.stem}-{stamp(now_ms)}.db"
    return project_root / "var" / "backups" / f"state-{stamp(now_ms)}.db"


def store_tables(db: Database) -> list[str]:
    """The tables of a store, in name order (SQLite's own excluded)."""
    if db.dialect == "sqlite":
        rows = db.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    else:
        rows = db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    return sorted(str(r[0]) for r in rows)


@contextmanager
def _file_errors(path: Path, doing: str) -> Iterator[None]:
    """A full disk while writing ``path`` is a NoSpaceError naming its file system."""
    try:
        yield
    except (OSError, sqlite3.OperationalError) as exc:
        full = getattr(exc, "errno", None) == errno.ENOSPC or "database or disk is full" in str(exc)
        if not full:
            raise
        raise NoSpaceError(f"cannot {doing} {path}: no space left on its file system", mount_point(path)) from exc


def copy_rows(src: Database, dst: Database) -> dict[str, int]:
    """Copy every row of every table ``src`` and ``dst`` share, inside one ``dst`` transaction.

    ``dst`` tables are emptied first; columns are matched by name. On PostgreSQL the source is
    read in one repeatable-read transaction (a consistent snapshot) and sequences are reset after.

    Returns:
        Rows copied per table.
    """
    shared = [t for t in store_tables(src) if t in set(store_tables(dst))]
    counts: dict[str, int] = {}
    with _snapshot(src), dst.transaction() as tx:
        for table in shared:
            dst_cols = set(table_columns(tx, table))
            cols = [c for c in table_columns(src, table) if c in dst_cols]
            tx.execute(f"DELETE FROM {table}")
            cur = src.conn.cursor() if src.dialect == "postgresql" else src.conn
            result = cur.execute(f"SELECT {', '.join(cols)} FROM {table}")
            insert = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            counts[table] = 0
            while batch := result.fetchmany(COPY_BATCH):
                tx.executemany(insert, [tuple(r) for r in batch])
                counts[table] += len(batch)
        if tx.dialect == "postgresql":
            for table in (t for t in SEQUENCED if t in shared):
                tx.query_one(
                    f"SELECT setval(pg_get_serial_sequence('{table}', 'seq'), COALESCE(MAX(seq), 0) + 1, false) "
                    f"FROM {table}"
                )
    return counts


@contextmanager
def _snapshot(db: Database) -> Iterator[None]:
    if db.dialect != "postgresql":
        yield
        return
    with db.conn.transaction():
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def write_backup(db: Database, out: Path) -> Path:
    """Copy the store ``db`` into the new file ``out`` (written beside it first, then renamed).

    Raises:
        NoSpaceError: ``out``'s file system filled up (nothing is left behind).
        StoreError: the copy failed SQLite's integrity check.
    """
    out = Path(out).resolve()
    part = out.with_name(out.name + ".part")
    with _file_errors(out, "write the backup"):
        out.parent.mkdir(parents=True, exist_ok=True)
        part.unlink(missing_ok=True)
        try:
            if db.dialect == "sqlite":
                dst = sqlite3.connect(part, isolation_level=None)
                try:
                    db.conn.backup(dst)
                    dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file, no -wal beside it
                finally:
                    dst.close()
            else:
                from monitoring.state.store import StateStore  # the same schema, created empty

                with StateStore(sqlite_url(part)) as copy:
                    copy_rows(db, copy.db)
                    copy.db.execute("PRAGMA journal_mode=DELETE")
            problems = file_problems(part)
            if problems:
                raise StoreError(f"the backup {out} failed its integrity check: {'; '.join(problems[:3])}")
            os.replace(part, out)
        finally:
            for leftover in ("", "-journal", "-wal", "-shm"):
                part.with_name(part.name + leftover).unlink(missing_ok=True)
    return out


def file_problems(path: Path) -> list[str]:
    """What is wrong with a backup file (``integrity_check``); [] when it is a sound SQLite database."""
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return [f"{path} is missing or empty"]
    with open(path, "rb") as f:
        if f.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            return ["garbage in its header (not a SQLite database)"]
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    finally:
        conn.close()
    return [str(r[0]) for r in rows if str(r[0]) != "ok"]


def move_aside(path: Path, suffix: str) -> Path | None:
    """Rename a SQLite store and its ``-wal``/``-shm`` files to ``<path>.<suffix>``; None if there is none."""
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}.{suffix}")
    for extra in ("-wal", "-shm"):
        side = path.with_name(path.name + extra)
        if side.exists():
            os.replace(side, aside.with_name(aside.name + extra))
    os.replace(path, aside)
    return aside
