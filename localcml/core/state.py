"""The local workspace's API state in ``W/workspace.db``: objects stored as JSON, ids, CRNs, times."""

from __future__ import annotations

import contextvars
import json
import secrets
import string
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cmlbase.clock import Clock
from cmlbase.db import Database, sqlite_url
from localcml.core.errors import not_found

SCHEMA = """
CREATE TABLE IF NOT EXISTS objects (
    kind TEXT NOT NULL, id TEXT NOT NULL, scope TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (kind, id));
CREATE INDEX IF NOT EXISTS objects_scope ON objects (kind, scope, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)
"""
_ALNUM = string.ascii_lowercase + string.digits
#: Keys starting with this are local bookkeeping, never returned by the API.
PRIVATE = "_"
#: The job run whose engine makes the current API call (None: the workspace's own key, a user).
CALLER_RUN: contextvars.ContextVar[str | None] = contextvars.ContextVar("localcml_caller_run", default=None)


def public_id() -> str:
    """A project/job/run identifier in CML's ``a1b2-c3d4-e5f6-g7h8`` form."""
    return "-".join("".join(secrets.choice(_ALNUM) for _ in range(4)) for _ in range(4))


def new_uuid() -> str:
    return str(uuid.uuid4())


def rfc3339(ms: int) -> str:
    """``2026-11-23T10:00:00.123Z`` for a millisecond timestamp."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def public(obj: dict) -> dict:
    """The object as the API returns it (local bookkeeping keys removed)."""
    return {k: v for k, v in obj.items() if not k.startswith(PRIVATE)}


class _SharedConnection(Database):
    """A SQLite ``Database`` with ONE connection for every thread.

    The API server runs each HTTP connection in a new thread; per-thread connections would pile
    up for the daemon's lifetime. ``ApiState`` serialises all use with its lock.
    """

    _shared = None

    @property
    def conn(self):
        if self._shared is None:
            self._shared = self._connect()
        return self._shared

    def close(self) -> None:
        if self._shared is not None:
            self._shared.close()
            self._shared = None


class ApiState:
    """Typed JSON objects (``project``, ``job``, ``run``, ``model``, ``build``, ``deployment``, ``runtime``).

    Args:
        workspace_dir: the workspace directory W; the database is ``W/workspace.db``.
        clock: the workspace clock (timestamps follow the local warp clock).
    """

    def __init__(self, workspace_dir: str | Path, clock: Clock):
        self._lock = threading.RLock()
        self.db = _SharedConnection(sqlite_url(Path(workspace_dir) / "workspace.db"))
        with self._lock:
            self.db.script(SCHEMA)
        self.clock = clock

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def now(self) -> str:
        return rfc3339(self.clock.now_ms())

    # -- meta ------------------------------------------------------------------------------
    def meta(self, key: str, default: Callable[[], str] | None = None) -> str | None:
        """The stored value of ``key``; when absent and ``default`` is given, store and return it."""
        with self._lock:
            row = self.db.query_one("SELECT value FROM meta WHERE key = ?", (key,))
            if row is None and default is not None:
                value = default()
                self.db.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, value))
                return value
            return row[0] if row else None

    def crn(self, ident: str) -> str:
        """``crn:cdp:ml:local:<account>:workspace:<workspace uuid>/<ident>``."""
        account = self.meta("account_id", new_uuid)
        workspace = self.meta("workspace_id", new_uuid)
        return f"crn:cdp:ml:local:{account}:workspace:{workspace}/{ident}"

    # -- objects ---------------------------------------------------------------------------
    def insert(self, kind: str, scope: str, obj: dict, ident: str | None = None) -> dict:
        """Store a new object under ``scope`` (its id is ``ident`` or ``obj["id"]``)."""
        with self._lock, self.db.transaction():
            row = self.db.query_one("SELECT COALESCE(MAX(seq), 0) + 1 FROM objects")
            self.db.execute(
                "INSERT INTO objects (kind, id, scope, seq, data) VALUES (?, ?, ?, ?, ?)",
                (kind, ident or obj["id"], scope, row[0], json.dumps(obj)),
            )
        return obj

    def get(self, kind: str, ident: str) -> dict | None:
        with self._lock:
            row = self.db.query_one("SELECT data FROM objects WHERE kind = ? AND id = ?", (kind, ident))
        return json.loads(row[0]) if row else None

    def require(self, kind: str, ident: str, scope: str | None = None, label: str | None = None) -> dict:
        """The object, or NOT_FOUND naming it (also when it is not under ``scope``).

        Raises:
            ApiError: NOT_FOUND.
        """
        with self._lock:
            row = self.db.query_one("SELECT data, scope FROM objects WHERE kind = ? AND id = ?", (kind, ident))
        if row is None or (scope is not None and row[1] != scope):
            raise not_found(label or kind, ident)
        return json.loads(row[0])

    def update(self, kind: str, ident: str, change: Callable[[dict], Any]) -> dict:
        """Apply ``change`` (which edits the dict in place) atomically and return the new object.

        Raises:
            ApiError: NOT_FOUND.
        """
        with self._lock, self.db.transaction():
            row = self.db.query_one("SELECT data FROM objects WHERE kind = ? AND id = ?", (kind, ident))
            if row is None:
                raise not_found(kind, ident)
            obj = json.loads(row[0])
            change(obj)
            self.db.execute("UPDATE objects SET data = ? WHERE kind = ? AND id = ?", (json.dumps(obj), kind, ident))
        return obj

    def delete(self, kind: str, ident: str) -> None:
        with self._lock:
            self.db.execute("DELETE FROM objects WHERE kind = ? AND id = ?", (kind, ident))

    def list(self, kind: str, scope: str | None = None) -> list[dict]:
        """Objects of one kind (optionally under one scope) in creation order (``_seq`` tells it)."""
        with self._lock:
            if scope is None:
                rows = self.db.query("SELECT data, seq FROM objects WHERE kind = ? ORDER BY seq", (kind,))
            else:
                rows = self.db.query(
                    "SELECT data, seq FROM objects WHERE kind = ? AND scope = ? ORDER BY seq", (kind, scope)
                )
        return [{**json.loads(r[0]), "_seq": r[1]} for r in rows]
