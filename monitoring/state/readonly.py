"""The state store opened read-only: SQLite through a ``mode=ro`` URI, PostgreSQL in read-only transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from monitoring.core.db import SQLITE_BUSY_TIMEOUT_MS, Database, redact_url
from monitoring.core.errors import DataError, TransientPlatformError


class ReadOnlyDatabase(Database):
    """A ``Database`` whose connections cannot write: for readers such as the dashboard.

    SQLite opens the file with ``mode=ro`` (and ``query_only``), so any write fails with
    "attempt to write a readonly database"; PostgreSQL sets ``default_transaction_read_only``,
    so every statement runs in a read-only transaction and a write fails with
    ``ReadOnlySqlTransaction``.

    Args:
        url: as ``Database``.
        base_dir: as ``Database``.
        busy_timeout_ms: as ``Database`` (a reader waits for a writer's lock this long).

    Raises:
        DataError: a SQLite store that does not exist (a reader never creates one).
    """

    def __init__(self, url: str, base_dir: str | Path | None = None, *, busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS):
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            path = (path if path.is_absolute() else Path(base_dir or ".") / path).resolve()
            if not path.is_file():
                raise DataError(
                    f"no state store at {path}: the pipeline has not run here yet "
                    "(run the jobs, or `cml-monitor demo`, then reload)"
                )
        super().__init__(url, base_dir, busy_timeout_ms=busy_timeout_ms)

    def _connect(self) -> Any:
        if self.dialect == "sqlite":
            assert self.path is not None  # a SQLite URL has a file
            conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro",
                uri=True,
                timeout=self.busy_timeout_ms / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")
            conn.execute("PRAGMA query_only=ON")
            return conn
        import psycopg  # only when PostgreSQL is asked for

        try:
            return psycopg.connect(self.url, autocommit=True, options="-c default_transaction_read_only=on")
        except psycopg.OperationalError as exc:
            raise TransientPlatformError(f"cannot connect to {redact_url(self.url)}: {exc}") from exc
