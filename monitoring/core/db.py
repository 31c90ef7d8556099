"""The library's SQL layer: ``cmlbase.db`` speaking in the project's errors.

A URL that is neither SQLite nor PostgreSQL is a ``ConfigError``; a PostgreSQL server that
refuses the connection, a ``TransientPlatformError``. A database opened with a name
(``what="state store"``) also turns the driver's storage failures into the project's errors: a
full disk into ``NoSpaceError``, a lock held too long into ``LockedError``, a damaged file, or one
that cannot be written (a read-only file, mount or server, a role without write privileges), into
``StoreError``; other driver errors pass unchanged.
"""

from __future__ import annotations

import errno
import shutil
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cmlbase import db as base
from cmlbase.db import SQLITE_BUSY_TIMEOUT_MS, SQLITE_HEADER, redact_url, sqlite_url
from cmlbase.mounts import mount_point
from monitoring.core import writable
from monitoring.core.errors import (
    ConfigError,
    LockedError,
    MonitoringError,
    NoSpaceError,
    StoreError,
    TransientPlatformError,
)

__all__ = ["SQLITE_BUSY_TIMEOUT_MS", "SQLITE_HEADER", "Database", "mount_point", "redact_url", "sqlite_url"]

#: Below this many free bytes, a SQLite I/O error on write is taken for a full file system.
NEARLY_FULL_BYTES = 256 * 1024
_SQLITE_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_SQLITE_LOCKED = ("SQLITE_BUSY", "SQLITE_LOCKED")
#: PostgreSQL SQLSTATEs: disk full, out of memory/files (class 53); lock not available; data corrupted.
_PG_NO_SPACE = ("53100",)
_PG_LOCKED = ("55P03",)
_PG_DAMAGED = ("XX001", "XX002")


class Database(base.Database):
    """A database reached by URL: ``sqlite:///relative/or/absolute.db`` or ``postgresql://...``.

    Args:
        url: the database URL. Relative SQLite paths resolve against ``base_dir``.
        base_dir: directory for relative SQLite paths (default: the working directory).
        what: what this database is, for messages (``"state store"``); when set, storage
            failures become ``NoSpaceError``, ``LockedError`` and ``StoreError``.
        busy_timeout_ms: how long a statement waits for another process's lock (SQLite's busy
            timeout, PostgreSQL's ``lock_timeout`` when ``what`` is set) before it fails.
        sqlite_pragmas: more ``PRAGMA`` statements run on each new SQLite connection.

    Raises:
        ConfigError: a URL that is neither SQLite nor PostgreSQL.
    """

    def __init__(
        self,
        url: str,
        base_dir: str | Path | None = None,
        *,
        what: str | None = None,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        sqlite_pragmas: Sequence[str] = (),
    ):
        self.what = what
        super().__init__(url, base_dir, busy_timeout_ms=busy_timeout_ms, sqlite_pragmas=sqlite_pragmas)

    def _refused_url(self, message: str) -> Exception:
        return ConfigError(message)

    def _unreachable(self, message: str) -> Exception:
        return TransientPlatformError(message)

    def _directory_failed(self, exc: OSError) -> Exception | None:
        if self.what is None:
            return None
        if exc.errno == errno.ENOSPC:
            return self._no_space_os("create the directory of")
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            assert self.path is not None  # only a SQLite file has a directory to create
            return writable.unwritable_file(self, Path(exc.filename or self.path.parent))
        return None

    def _server_session(self, conn: Any) -> None:
        if self.what is not None:
            conn.execute(f"SET lock_timeout = {self.busy_timeout_ms}")

    # -- storage failures ----------------------------------------------------------------
    @contextmanager
    def translated(self) -> Iterator[None]:
        """Turn the driver's storage failures into the project's errors (only with ``what``)."""
        try:
            yield
        except MonitoringError:
            raise
        except sqlite3.Error as exc:
            mapped = self._sqlite_error(exc) if self.what is not None else None
            if mapped is None:
                raise
            raise mapped from exc
        except OSError as exc:  # psycopg's errors are not OSErrors; this is the file system
            if self.what is None or exc.errno != errno.ENOSPC:
                raise
            raise self._no_space_os("write") from exc
        except Exception as exc:
            mapped = self._pg_error(exc) if self.what is not None else None
            if mapped is None:
                raise
            raise mapped from exc

    def _sqlite_error(self, exc: sqlite3.Error) -> MonitoringError | None:
        name = getattr(exc, "sqlite_errorname", "") or ""
        text = str(exc)
        if name.startswith("SQLITE_READONLY") or "readonly database" in text:
            return writable.refuses_writes(self) or writable.read_only(
                self, text, f"make {self.where} and its directory writable for the user this job runs as"
            )
        if name.startswith("SQLITE_CANTOPEN"):
            return writable.refuses_writes(self) or StoreError(
                f"{self.what} {self.where} cannot be opened ({text})",
                f"check that {self.where} and its directory can be read and written by the user this job runs "
                "as, then re-run; nothing was written",
            )
        if name == "SQLITE_FULL" or "database or disk is full" in text:
            return self._no_space(text)
        if name.startswith("SQLITE_IOERR") and self._nearly_full():
            return self._no_space(text)
        if name in _SQLITE_LOCKED or "database is locked" in text:
            return self._locked(text)
        if name in _SQLITE_DAMAGED or "malformed" in text or "not a database" in text:
            return StoreError(f"{self.what} {self.where} is damaged: {text}")
        if name.startswith("SQLITE_IOERR"):
            return StoreError(
                f"{self.what} {self.where}: disk I/O error ({text})",
                f"check the disk holding {self.where} (kernel log, df), then re-run; nothing was written",
            )
        return None

    def _pg_error(self, exc: Exception) -> MonitoringError | None:
        state = getattr(exc, "sqlstate", None)
        if state in _PG_NO_SPACE:
            return NoSpaceError(f"{self.what} {self.where}: the database server's disk is full: {exc}", self.where)
        if state in _PG_LOCKED:
            return self._locked(str(exc))
        if state in _PG_DAMAGED:
            return StoreError(f"{self.what} {self.where} is damaged: {exc}")
        if state == writable.PG_READ_ONLY:
            return writable.pg_read_only(self)
        if state == writable.PG_NO_PRIVILEGE:
            return writable.pg_no_privilege(self, str(exc).splitlines()[0])
        return None

    def _locked(self, text: str) -> LockedError:
        text = text.splitlines()[0] if text else text
        return LockedError(
            f"{self.what} {self.where} stayed locked by another process for more than "
            f"{self.busy_timeout_ms / 1000:g}s ({text})",
            self.where,
        )

    def _mount(self) -> str:
        return mount_point(self.path) if self.path is not None else self.where

    def _nearly_full(self) -> bool:
        if self.path is None:
            return False
        try:
            return shutil.disk_usage(self.path.parent).free < NEARLY_FULL_BYTES
        except OSError:
            return False

    def _no_space(self, text: str) -> NoSpaceError:
        return NoSpaceError(f"{self.what} {self.where}: no space left on its file system ({text})", self._mount())

    def _no_space_os(self, doing: str) -> NoSpaceError:
        return NoSpaceError(
            f"{self.what} {self.where}: cannot {doing} it, no space left on its file system", self._mount()
        )
