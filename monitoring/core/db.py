"""One small SQL layer over SQLite (default) and PostgreSQL, chosen by URL.

Statements are written once with ``?`` placeholders and always parameterised; for
PostgreSQL they are rewritten to ``%s``. Each thread gets its own connection.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from monitoring.core.errors import ConfigError, TransientPlatformError

SQLITE_BUSY_TIMEOUT_MS = 30_000
_PLACEHOLDER = re.compile(r"\?")


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


class Database:
    """A database reached by URL: ``sqlite:///relative/or/absolute.db`` or ``postgresql://...``.

    Args:
        url: the database URL. Relative SQLite paths resolve against ``base_dir``.
        base_dir: directory for relative SQLite paths (default: the working directory).
    """

    def __init__(self, url: str, base_dir: str | Path | None = None):
        self.url = url
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
            self.path.parent.mkdir(parents=True, exist_ok=True)
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
            self.path = None
        else:
            raise ConfigError(f"database url {redact_url(url)!r}: expected sqlite:///PATH or postgresql://...")

    # -- connections -------------------------------------------------------------------
    def _connect(self):
        if self.dialect == "sqlite":
            conn = sqlite3.connect(
                self.path, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            return conn
        import psycopg  # only when PostgreSQL is asked for

        try:
            return psycopg.connect(self.url, autocommit=True)
        except psycopg.OperationalError as exc:
            raise TransientPlatformError(f"cannot connect to {redact_url(self.url)}: {exc}") from exc

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
        return self.conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.dialect == "sqlite":
            self.conn.executemany(sql, rows)
        else:
            with self.conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return list(self.execute(sql, params).fetchall())

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        return self.execute(sql, params).fetchone()

    @contextmanager
    def transaction(self) -> Iterator[Database]:
        """All statements inside commit together or not at all (SQLite: BEGIN IMMEDIATE)."""
        conn = self.conn
        if self.dialect == "sqlite":
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        else:
            with conn.transaction():
                yield self

    def script(self, ddl: str) -> None:
        """Run several ``;``-separated DDL statements (schema creation)."""
        for stmt in (s.strip() for s in ddl.split(";")):
            if stmt:
                self.execute(stmt)

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
