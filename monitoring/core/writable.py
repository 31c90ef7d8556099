"""Why a store cannot take writes: a read-only file, directory, mount or server, or a role without write privileges.

Each refusal is a ``StoreError`` (exit 7) naming the store and saying what to change: it is the
store's fault, not a bug. ``refuses_writes`` finds it before anything is written; ``Database``
turns the driver's own read-only errors into the same refusals when a write meets one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from cmlbase.mounts import mount_point
from monitoring.core.errors import StoreError

if TYPE_CHECKING:
    from monitoring.core.db import Database

#: PostgreSQL SQLSTATEs: a write in a read-only transaction; a privilege the role lacks.
PG_READ_ONLY = "25006"
PG_NO_PRIVILEGE = "42501"
#: Tables of the current schema this role may not write (each needs INSERT, UPDATE and DELETE).
_PG_UNWRITABLE_TABLES = (
    "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() "
    "AND table_type = 'BASE TABLE' AND NOT ("
    + " AND ".join(
        f"has_table_privilege(quote_ident(table_schema) || '.' || quote_ident(table_name), '{p}')"
        for p in ("INSERT", "UPDATE", "DELETE")
    )
    + ") ORDER BY table_name"
)
#: Tables named in a refusal (the rest are counted).
SHOWN_TABLES = 5


def refuses_writes(db: Database) -> StoreError | None:
    """Why ``db`` cannot take a write, found without writing; None when nothing says so.

    SQLite: the file, or its directory (SQLite writes its journal and WAL there), is not writable
    by this process: a read-only mount, permissions, an immutable attribute (``os.access`` says
    so for root too). PostgreSQL: the session's transactions are read-only
    (``default_transaction_read_only``, a standby), or the role may not write a table of the
    current schema.
    """
    if db.path is not None:
        for path in (db.path, db.path.parent):
            if path.exists() and not os.access(path, os.W_OK):
                return unwritable_file(db, path)
        return None
    row = db.query_one("SELECT current_setting('transaction_read_only')")
    if row is not None and row[0] == "on":
        return pg_read_only(db)
    tables = [str(r[0]) for r in db.query(_PG_UNWRITABLE_TABLES)]
    if not tables:
        return None
    more = f" and {len(tables) - SHOWN_TABLES} more" if len(tables) > SHOWN_TABLES else ""
    return pg_no_privilege(db, f"it may not insert, update or delete in {', '.join(tables[:SHOWN_TABLES])}{more}")


def read_only(db: Database, why: str, fix: str) -> StoreError:
    """The refusal: what is read-only and why, and what to change (a write was refused, none was made)."""
    return StoreError(f"{db.what} {db.where} is read-only: {why}", f"{fix}, then re-run; nothing was written")


def unwritable_file(db: Database, path: Path) -> StoreError:
    """``path`` (the store's file or directory, or one to create) cannot be written: its mount, or its permissions."""
    while not path.exists() and path != path.parent:
        path = path.parent
    if os.statvfs(path).f_flag & os.ST_RDONLY:
        mount = mount_point(path)
        return read_only(
            db,
            f"its file system ({mount}) is mounted read-only",
            f"remount {mount} read-write, or point state.url at a writable place",
        )
    return read_only(
        db,
        f"{path} is not writable by the user this job runs as (uid {os.geteuid()})",
        f"give that user write permission on {path} (chmod, chown; `lsattr` shows an immutable attribute, "
        "`chattr -i` removes it)",
    )


def pg_read_only(db: Database) -> StoreError:
    return read_only(
        db,
        "the server runs this role's transactions read-only (default_transaction_read_only, or a standby)",
        "turn it off for the role or the database (`ALTER ROLE <role> SET default_transaction_read_only = off`), "
        "or point state.url at the primary server",
    )


def pg_no_privilege(db: Database, detail: str) -> StoreError:
    user = urlsplit(db.url).username or "the role of state.url"
    return read_only(
        db,
        f"role {user} lacks a privilege ({detail})",
        f"grant {user} SELECT, INSERT, UPDATE and DELETE on the store's tables and USAGE on their sequences "
        "(or connect as the role that owns them)",
    )
