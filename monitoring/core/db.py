"""One small SQL layer over SQLite (default) and PostgreSQL, chosen by URL.

Statements are written once with ``?`` placeholders and always parameterised; for
PostgreSQL they are rewritten to ``%s``. Each thread gets its own connection. A database
opened with a name (``what="state store"``) turns the driver's storage failures into the
project's errors: a full disk into ``NoSpaceError``, a lock held too long into ``LockedError``,
a damaged file, or one that cannot be written (a read-only file, mount or server, a role without
write privileges), into ``StoreError``; other driver errors pass unchanged.
"""

from __future__ import annotations

import errno
import re
import shutil
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from monitoring.core import writable
from monitoring.core.errors import (
    ConfigError,
    LockedError,
    MonitoringError,
    NoSpaceError,
    StoreError,
    TransientPlatformError,
)
from monitoring.core.writable import mount_point

T = TypeVar("T")
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"
#: Below this many free bytes, a SQLite I/O error on write is taken for a full file system.
NEARLY_FULL_BYTES = 256 * 1024
_PLACEHOLDER = re.compile(r"\?")
_SQLITE_DAMAGED = ("SQLITE_CORRUPT", "SQLITE_NOTADB")
_SQLITE_LOCKED = ("SQLITE_BUSY", "SQLITE_LOCKED")
#: PostgreSQL SQLSTATEs: disk full, out of memory/files (class 53); lock not available; data corrupted.
_PG_NO_SPACE = ("53100",)
_PG_LOCKED = ("55P03",)
_PG_DAMAGED = ("XX001", "XX002")


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


class Database:
    """A database reached by URL: ``sqlite:///relative/or/absolute.db`` or ``postgresql://...``.

    Args:
        url: the database URL. Relative SQLite paths resolve against ``base_dir``.
        base_dir: directory for relative SQLite paths (default: the working directory).
        what: what this database is, for messages (``"state store"``); when set, storage
            failures become ``NoSpaceError``, ``LockedError`` and ``StoreError``.
        busy_timeout_ms: how long a statement waits for another process's lock (SQLite's busy
            timeout, PostgreSQL's ``lock_timeout``) before it fails.
        sqlite_pragmas: more ``PRAGMA`` statements run on each new SQLite connection.
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
        self.url = url
        self.sqlite_pragmas = tuple(sqlite_pragmas)
        self.what = what
        self.busy_timeout_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[Any] = set()
        weakref.finalize(self, _close_all, self._all, self._lock)
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            path = Path(url[len("sqlite:///") :])
            if not path.is_absolute():
                path = Path(base_dir or ".") / path
            self.path = path.resolve()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno == errno.ENOSPC and what is not None:
                    raise self._no_space_os("create the directory of") from exc
                if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) and what is not None:
                    raise writable.unwritable_file(self, Path(exc.filename or self.path.parent)) from exc
                raise
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self.path = None
        else:
            raise ConfigError(f"database url {redact_url(url)!r}: expected sqlite:///PATH or postgresql://...")

    @property
    def where(self) -> str:
        """The store as a person finds it: its file, or its URL without the password."""
        return str(self.path) if self.path is not None else redact_url(self.url)

    # -- connections -------------------------------------------------------------------
    def _connect(self):
        if self.dialect == "sqlite":
            with self.translated():
                conn = sqlite3.connect(
                    self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
                )
                try:
                    conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
                    conn.execute("PRAGMA journal_mode=WAL")
                    conn.execute("PRAGMA synchronous=NORMAL")
                    for pragma in self.sqlite_pragmas:
                        conn.execute(pragma)
                except BaseException:
                    conn.close()
                    raise
            return conn
        import psycopg  # only when PostgreSQL is asked for

        try:
            conn = psycopg.connect(self.url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise TransientPlatformError(f"cannot connect to {redact_url(self.url)}: {exc}") from exc
        if self.what is not None:
            conn.execute(f"SET lock_timeout = {self.busy_timeout_ms}")
        return conn

    @property
    def conn(self):
        holder = getattr(self._local, "holder", None)
        if holder is None:
            holder = _Holder(self._connect(), self._all, self._lock)
            self._local.holder = holder
        return holder.conn

    def close(self) -> None:
        """Close every connection of every thread."""
        _close_all(self._all, self._lock)
        self._local = threading.local()

    # -- statements --------------------------------------------------------------------
    def _sql(self, sql: str) -> str:
        return _PLACEHOLDER.sub("%s", sql) if self.dialect == "postgresql" else sql

    def execute(self, sql: str, params: Sequence[Any] = ()):
        with self.translated():
            return self.conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.translated():
            if self.dialect == "sqlite":
                self.conn.executemany(sql, rows)
            else:
                with self.conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.translated():
            return list(self.execute(sql, params).fetchall())

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        with self.translated():
            return self.execute(sql, params).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """All statements inside commit together or not at all (SQLite: BEGIN IMMEDIATE)."""
        conn = self.conn
        if self.dialect == "sqlite":
            with self.translated():
                conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
                with self.translated():
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # SQLite rolls back by itself after some errors (a full disk)
                    conn.execute("ROLLBACK")
                raise
        else:
            with self.translated(), conn.transaction():
                yield self

    def each_changing_one(self, sql: str, items: Iterable[tuple[T, Sequence[Any]]]) -> list[T]:
        """Run ``sql`` once per item with its parameters, in one transaction (a claim, an insert
        that may conflict); returns the items whose statement changed exactly one row, in order."""
        changed = []
        with self.transaction() as tx:
            for item, params in items:
                if tx.execute(sql, params).rowcount == 1:
                    changed.append(item)
        return changed

    def script(self, ddl: str) -> None:
        """Run several ``;``-separated DDL statements (schema creation)."""
        for stmt in (s.strip() for s in ddl.split(";")):
            if stmt:
                self.execute(stmt)

    def table_exists(self, name: str) -> bool:
        """Whether a table of this name exists (connects; a missing SQLite file is created empty)."""
        if self.dialect == "sqlite":
            row = self.query_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        else:
            row = self.query_one(
                "SELECT 1 FROM information_schema.tables WHERE table_name = ? AND table_schema = current_schema()",
                (name,),
            )
        return row is not None

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

    @property
    def autoincrement_pk(self) -> str:
        return "INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"


class _Holder:
    """Owns one thread's connection: closes it when the thread ends (its thread-local goes away)."""

    def __init__(self, conn: Any, registry: set, lock: threading.Lock):
        self.conn, self.registry, self.lock = conn, registry, lock
        with lock:
            registry.add(conn)

    def __del__(self) -> None:
        with self.lock:
            if self.conn not in self.registry:
                return
            self.registry.discard(self.conn)
        _close_quietly(self.conn)


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - closing is best effort
        pass


def _close_all(registry: set, lock: threading.Lock) -> None:
    with lock:
        conns = list(registry)
        registry.clear()
    for conn in conns:
        _close_quietly(conn)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
