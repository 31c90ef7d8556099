"""The state store opened read-only: SQLite through a ``mode=ro`` URI, PostgreSQL in read-only transactions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from monitoring.core.db import Database, redact_url
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

    Raises:
        DataError: a SQLite store that does not exist (a reader never creates one).
    """

    def __init__(self, url: str, base_dir: str | Path | None = None):
        if url.startswith("sqlite:///"):
            path = Path(url[len("sqlite:///") :])
            path = (path if path.is_absolute() else Path(base_dir or ".") / path).resolve()
            if not path.is_file():
                raise DataError(
                    f"no state store at {path}: the pipeline has not run here yet "
                    "(run the jobs, or `cml-monitor demo`, then reload)"
                )
        super().__init__(url, base_dir)

    def _connect(self):
        if self.dialect == "sqlite":
            conn = sqlite3.connect(
                f"{self.path.as_uri()}?mode=ro",
                uri=True,
                timeout=30,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA query_only=ON")
            return conn
        import psycopg  # only when PostgreSQL is asked for

        try:
            return psycopg.connect(self.url, autocommit=True, options="-c default_transaction_read_only=on")
        except psycopg.OperationalError as exc:
            raise TransientPlatformError(f"cannot connect to {redact_url(self.url)}: {exc}") from exc

    def table_exists(self, table: str) -> bool:
        """Whether ``table`` exists (a reader must not create it)."""
        if self.dialect == "sqlite":
            return self.query_one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)) is not None
        return self.query_one("SELECT to_regclass(?)", (table,))[0] is not None
