"""Subprocess for the lease tests: open the store, say ready, on "go" try the lease once, report, then wait."""

from __future__ import annotations

import sys

from monitoring.state.leases import holder_name
from monitoring.state.store import StateStore


def main(url: str, name: str) -> None:
    store = StateStore(url)
    store.db.query_one("SELECT 1")  # connected before the start line: the tries race for real
    holder = holder_name("worker")
    print("ready", flush=True)
    sys.stdin.readline()
    got = store.leases.try_acquire(name, holder)
    print(f"{'acquired' if got else 'refused'} {holder}", flush=True)
    sys.stdin.readline()  # hold it until told (or killed)
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
