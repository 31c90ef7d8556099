"""One small SQL layer over SQLite (default) and PostgreSQL, chosen by URL.

Statements are written once with ``?`` placeholders and always parameterised; for
PostgreSQL they are rewritten to ``%s``. Each thread gets its own connection. Errors are the
driver's own: a subclass that speaks in its package's errors overrides ``translated`` (around
every statement) and the hooks named ``_refused_url``, ``_unreachable``, ``_directory_failed`` and
``_server_session`` (``monitoring.core.db`` does, for the state store).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
D = TypeVar("D", bound="Database")
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"
_PLACEHOLDER = re.compile(r"\?")


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{Path(path)}"


class Database:
    """A database reached by URL: ``sqlite:///relative/or/absolute.db`` or ``postgresql://...``.

    Args:
        url: the database URL. Relative SQLite paths resolve against ``base_dir``.
        base_dir: directory for relative SQLite paths (default: the working directory).
        busy_timeout_ms: how long a statement waits for another process's lock (SQLite's busy
            timeout) before it fails.
        sqlite_pragmas: more ``PRAGMA`` statements run on each new SQLite connection.

    Raises:
        ValueError: a URL that is neither SQLite nor PostgreSQL (a subclass may raise its own error).
    """

    def __init__(
        self,
        url: str,
        base_dir: str | Path | None = None,
        *,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        sqlite_pragmas: Sequence[str] = (),
    ):
        self.url = url
        self.sqlite_pragmas = tuple(sqlite_pragmas)
        self.busy_timeout_ms = int(busy_timeout_ms)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: set[Any] = set()
        weakref.finalize(self, _close_all, self._all, self._lock)
        self.path: Path | None = None
        if url.startswith("sqlite:///"):
            self.dialect = "sqlite"
            path = Path(url[len("sqlite:///") :])
            if not path.is_absolute():
                path = Path(base_dir or ".") / path
            path = path.resolve()
            self.path = path
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                mapped = self._directory_failed(exc)
                if mapped is None:
                    raise
                raise mapped from exc
        elif url.startswith(("postgresql://", "postgres://")):
            self.dialect = "postgresql"
        else:
            raise self._refused_url(f"database url {redact_url(url)!r}: expected sqlite:///PATH or postgresql://...")

    @property
    def where(self) -> str:
        """The store as a person finds it: its file, or its URL without the password."""
        return str(self.path) if self.path is not None else redact_url(self.url)

    # -- what a subclass may say in its own errors ----------------------------------------
    def _refused_url(self, message: str) -> Exception:
        """The error for a URL that is neither SQLite nor PostgreSQL (``message`` names it)."""
        return ValueError(message)

    def _unreachable(self, message: str) -> Exception:
        """The error for a PostgreSQL server that refuses the connection (``message`` names it)."""
        return ConnectionError(message)

    def _directory_failed(self, exc: OSError) -> Exception | None:
        """The error for a SQLite file whose directory cannot be created; None: ``exc`` itself."""
        return None

    def _server_session(self, conn: Any) -> None:
        """Set up a new PostgreSQL connection (a subclass may set session settings)."""

    @contextmanager
    def translated(self) -> Iterator[None]:
        """Around every statement: the driver's errors pass unchanged here; a subclass translates them."""
        yield

    # -- connections -------------------------------------------------------------------
    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            with self.translated():
                conn: Any = sqlite3.connect(
                    str(self.path), timeout=self.busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
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
            raise self._unreachable(f"cannot connect to {redact_url(self.url)}: {exc}") from exc
        self._server_session(conn)
        return conn

    @property
    def conn(self) -> Any:
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

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self.translated():
            return self.conn.execute(self._sql(sql), tuple(params))

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.translated():
            if self.dialect == "sqlite":
                self.conn.executemany(sql, rows)
            else:
                with self.conn.cursor() as cur:
                    cur.executemany(self._sql(sql), rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.translated():
            return list(self.execute(sql, params).fetchall())

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        with self.translated():
            row: tuple[Any, ...] | None = self.execute(sql, params).fetchone()
            return row

    def query_aggregate(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...]:
        """The one row of an aggregate query (``COUNT``, ``MAX``), which has one even over no rows."""
        row = self.query_one(sql, params)
        if row is None:
            raise ValueError(f"the aggregate query returned no row: {sql}")
        return row

    @contextmanager
    def transaction(self: D) -> Iterator[D]:
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

    @property
    def autoincrement_pk(self) -> str:
        return "INTEGER PRIMARY KEY AUTOINCREMENT" if self.dialect == "sqlite" else "BIGSERIAL PRIMARY KEY"


class _Holder:
    """Owns one thread's connection: closes it when the thread ends (its thread-local goes away)."""

    def __init__(self, conn: Any, registry: set[Any], lock: threading.Lock):
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


def _close_all(registry: set[Any], lock: threading.Lock) -> None:
    with lock:
        conns = list(registry)
        registry.clear()
    for conn in conns:
        _close_quietly(conn)


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)
