"""A project's files as a model build (or a fork) copies them: less what is not the project's code.

CML builds a model from a snapshot of the project's files (taken with its own internal git,
so the project's ``.git`` is never part of it). The local copy leaves out, at any depth:

- every local workspace directory, recognised by its files (``workspace.db``, ``daemon.lock``),
  whatever its name: its builds, deployments and databases are the workspace's, not the project's;
- every virtualenv (a directory holding ``pyvenv.cfg``);
- state stores of cml-monitor and the local metrics store (SQLite files recognised by their
  tables, wherever ``state.url`` put them, with their ``-wal``/``-shm``/``-journal`` files and
  backups), and ``.cml-monitor`` (the history markers);
- VCS data and caches: ``.git``, ``__pycache__``, ``*.egg-info``, ``.pytest_cache``,
  ``.ruff_cache``, ``.mypy_cache``, ``demo-output``.

Model artifacts under ``var/`` are copied: a deployment loads them from its build, as in CML.
What is left is measured before anything is copied; over the size cap the build fails with
``SnapshotTooLarge``, naming the largest paths.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

#: Names never copied, at any depth.
EXCLUDED_NAMES = (
    ".git",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    "demo-output",
    ".cml-monitor",
)
#: A directory holding one of these files is a local workspace directory.
WORKSPACE_MARKERS = ("workspace.db", "daemon.lock")
#: A directory holding this file is a virtualenv.
VENV_MARKER = "pyvenv.cfg"
#: Tables that make a SQLite file a store of cml-monitor (its state store) or of the workspace (metrics).
STORE_SIGNATURES = ({"schema_version", "watermarks", "decisions"}, {"model_metrics"})
#: The smallest SQLite page: a database file is a whole number of pages.
SQLITE_MIN_PAGE = 512
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")
#: The default cap on what one build copies.
DEFAULT_MAX_BYTES = 500 * 2**20
LARGEST_SHOWN = 5


class SnapshotTooLarge(Exception):
    """The project's files to copy exceed the build size cap; the message names the largest paths."""


@dataclass(frozen=True)
class Entry:
    """One path to copy (relative to the project root): a file, a symlink or a directory."""

    rel: str
    kind: str  # "file" | "link" | "dir"
    size: int = 0


def _store_tables(path: Path) -> set[str]:
    """The table names of a SQLite file (read without writing anything), or an empty set.

    Read-only first, so that a store open in WAL mode shows the tables still in its log; then
    as an immutable file (no lock, no log) when that fails (a read-only directory, say). The file
    is opened by SQLite only, never with ``open()``: closing any other descriptor of a database
    file drops every POSIX lock this process holds on it, so a connection of this process (the
    workspace's, or a test's in-process one) would lose its shared lock, and another process that
    then closes its own connection takes itself for the last one and removes the log under it.
    A file that is not a database fails the query and has no tables.
    """
    for options in ("mode=ro", "mode=ro&immutable=1"):
        try:
            con = sqlite3.connect(f"{path.resolve().as_uri()}?{options}", uri=True, timeout=1)
            try:
                cursor = con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                names = {row[0] for row in cursor.fetchall()}
                cursor.close()  # finalized before the close: no read left open on a store in WAL mode
                return names
            finally:
                con.close()
        except sqlite3.OperationalError:
            continue
        except sqlite3.Error:  # not a database
            return set()
    return set()


def is_store(path: Path) -> bool:
    """Whether ``path`` is a state store (or a backup of one) or a local metrics store."""
    try:
        size = path.stat().st_size
    except OSError:
        return False
    if size < SQLITE_MIN_PAGE or size % SQLITE_MIN_PAGE:  # a SQLite file is whole pages of 512 B or more
        return False
    tables = _store_tables(path)
    return any(signature <= tables for signature in STORE_SIGNATURES)


def _left_out_dir(path: Path, skipped: set[Path]) -> bool:
    return (
        path.resolve() in skipped
        or (path / VENV_MARKER).is_file()
        or any((path / marker).exists() for marker in WORKSPACE_MARKERS)
    )


def plan(project_root: str | Path, skip: tuple[str | Path, ...] = ()) -> list[Entry]:
    """What a snapshot of ``project_root`` copies, in copy order (directories before their contents).

    Args:
        project_root: the project's files.
        skip: more directories to leave out (the workspace's own W).
    """
    root = Path(project_root).resolve()
    skipped = {Path(p).resolve() for p in skip}
    entries: list[Entry] = []
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        kept_dirs = []
        for name in sorted(dirs):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED_NAMES):
                continue
            if path.is_symlink():
                entries.append(Entry(rel, "link"))
            elif not _left_out_dir(path, skipped):
                entries.append(Entry(rel, "dir"))
                kept_dirs.append(name)
        dirs[:] = kept_dirs
        stores = {name for name in files if not (here / name).is_symlink() and is_store(here / name)}
        for name in sorted(files):
            path = here / name
            if (
                name in stores
                or any(name.endswith(s) and name[: -len(s)] in stores for s in SQLITE_SIDECARS)
                or any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED_NAMES)
            ):
                continue
            rel = path.relative_to(root).as_posix()
            if path.is_symlink():
                entries.append(Entry(rel, "link"))
            else:
                entries.append(Entry(rel, "file", path.lstat().st_size))
    return entries


def _mb(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def too_large(entries: list[Entry], max_bytes: int) -> str | None:
    """Why ``entries`` cannot be copied under ``max_bytes`` (naming the largest paths), or None."""
    total = sum(e.size for e in entries)
    if total <= max_bytes:
        return None
    tops: dict[str, int] = {}
    for entry in entries:
        top, _, rest = entry.rel.partition("/")
        key = f"{top}/" if rest else top
        tops[key] = tops.get(key, 0) + entry.size
    largest_tops = sorted(tops.items(), key=lambda kv: -kv[1])[:LARGEST_SHOWN]
    largest_files = sorted((e for e in entries if e.kind == "file"), key=lambda e: -e.size)[:LARGEST_SHOWN]
    return (
        f"the project's files to copy come to {_mb(total)}, over the build size cap of {_mb(max_bytes)} "
        f"(platform.local.build_max_mb); largest: {', '.join(f'{k} {_mb(v)}' for k, v in largest_tops)}; "
        f"largest files: {', '.join(f'{e.rel} {_mb(e.size)}' for e in largest_files)}; move them out of the "
        "project (CML snapshots them too), or raise the cap"
    )


def snapshot(
    project_root: str | Path, dest: str | Path, skip: tuple[str | Path, ...] = (), max_bytes: int | None = None
) -> int:
    """Copy the project's files into ``dest`` (which must not exist); returns the bytes copied.

    Raises:
        SnapshotTooLarge: more than ``max_bytes`` to copy (nothing is copied).
    """
    root = Path(project_root).resolve()
    dest = Path(dest)
    entries = plan(root, skip)
    if max_bytes is not None and (why := too_large(entries, max_bytes)) is not None:
        raise SnapshotTooLarge(why)
    dest.mkdir(parents=True)
    for entry in entries:
        source, target = root / entry.rel, dest / entry.rel
        try:
            if entry.kind == "dir":
                target.mkdir()
            elif entry.kind == "link":
                os.symlink(os.readlink(source), target)
            else:
                shutil.copy2(source, target)
        except FileNotFoundError:
            if os.path.lexists(source):
                raise
            # removed since it was listed (a job writing meanwhile): not part of the snapshot
    shutil.copystat(root, dest)
    return sum(e.size for e in entries)
