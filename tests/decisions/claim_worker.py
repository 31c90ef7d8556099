"""Subprocess for the cross-process claim test: open the store, say ready, wait for "go", claim once."""

from __future__ import annotations

import sys

from monitoring.state.store import StateStore


def main(url: str, decision_id: str, run_id: str) -> None:
    store = StateStore(url)
    store.db.query_one("SELECT 1")  # connect before the start line, so the claims race for real
    print("ready", flush=True)
    sys.stdin.readline()
    print("claimed" if store.claim_decision(decision_id, run_id, 1) else "refused", flush=True)
    store.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
