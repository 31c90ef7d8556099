"""Subprocess: hold a write lock on a store (SQLite file or PostgreSQL table), say "locked", release on a line."""

from __future__ import annotations

import sqlite3
import sys


def main(url: str, table: str) -> None:
    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url[len("sqlite:///") :], isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
    else:
        import psycopg

        conn = psycopg.connect(url)
        conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
    print("locked", flush=True)
    sys.stdin.readline()
    conn.rollback() if not isinstance(conn, sqlite3.Connection) else conn.execute("ROLLBACK")
    conn.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
