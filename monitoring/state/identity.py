"""Whose state store this is (project and model, written at creation) and the settings its history depends on."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from importlib import metadata

from monitoring.core.db import Database

#: Tables whose rows are history: a store holding any of them has been used.
HISTORY_TABLES = ("deployments", "windows", "decisions", "pending_labels")


@dataclass(frozen=True)
class StoreIdentity:
    """The identity row: one per store, written when the store is created."""

    store_id: str
    project_id: str | None
    model: str
    created_ms: int
    created_by: str


def _release() -> str:
    try:
        return f"cml-monitor {metadata.version('cml-monitor')}"
    except metadata.PackageNotFoundError:
        return "cml-monitor"


def read_identity(db: Database) -> StoreIdentity | None:
    """The store's identity, or None for a store created before identities existed (schema 1)."""
    row = db.query_one("SELECT store_id, project_id, model, created_ms, created_by FROM store_identity")
    return None if row is None else StoreIdentity(row[0], row[1], row[2], int(row[3]), row[4])


def write_identity(db: Database, project_id: str | None, model: str, now_ms: int) -> StoreIdentity:
    """Write the identity unless one exists (a concurrent creator may win). Returns: the stored identity."""
    db.execute(
        "INSERT INTO store_identity (singleton, store_id, project_id, model, created_ms, created_by) "
        "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (singleton) DO NOTHING",
        (uuid.uuid4().hex, project_id, model, int(now_ms), _release()),
    )
    stored = read_identity(db)
    assert stored is not None  # written just now, or by a concurrent creator
    return stored


def rebind_identity(db: Database, project_id: str | None, model: str) -> StoreIdentity:
    """Point the identity at another project or model: only for a store without history (checked by the caller)."""
    db.execute("UPDATE store_identity SET project_id = ?, model = ?", (project_id, model))
    stored = read_identity(db)
    assert stored is not None  # the caller found one to rebind
    return stored


def settings(db: Database) -> dict[str, str]:
    """The recorded settings history depends on (``windows.length`` ...), by key."""
    return {str(k): str(v) for k, v in db.query("SELECT key, value FROM store_settings")}


def put_setting(db: Database, key: str, value: str, now_ms: int) -> None:
    db.execute(
        "INSERT INTO store_settings (key, value, set_ms) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, set_ms = excluded.set_ms",
        (key, value, int(now_ms)),
    )


def history_counts(db: Database) -> dict[str, int]:
    """Rows per history table (a fresh store has none)."""
    return {t: int(db.query_aggregate(f"SELECT COUNT(*) FROM {t}")[0]) for t in HISTORY_TABLES}


def has_history(db: Database) -> bool:
    return any(db.query_one(f"SELECT 1 FROM {t} LIMIT 1") is not None for t in HISTORY_TABLES)


def models_in_history(db: Database) -> set[str]:
    """Models named by recorded deployments and decisions (a schema-1 store has no identity to ask)."""
    rows = db.query("SELECT model FROM deployments UNION SELECT model FROM decisions")
    return {str(r[0]) for r in rows}
