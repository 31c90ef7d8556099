"""The aggregates ledger: which window results were sent to CML, so each is sent at most once.

Before ``track_aggregate_metrics`` a run records its intent (state ``sending``; the primary
key (deployment, start, end) lets only one run intend a window); after the call it marks the
window ``sent``. A run killed between the two leaves ``sending``: the next run checks the
metrics store for that aggregate record before anything is sent again (``take_over``), so a
window is never sent twice, and one that never arrived is sent once more. A settled window
whose labels are still queued, not posted (the metrics store refused them), is ``held``: it is
sent once they are posted and the window re-read (``release``), never before with fewer labels.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitoring.core.db import Database

SENDING = "sending"
SENT = "sent"
HELD = "held"


@dataclass(frozen=True)
class LedgerRow:
    deployment_crn: str
    start_ms: int
    end_ms: int
    state: str
    run_id: str
    intent_ms: int
    sent_ms: int | None


class AggregateLedger:
    """The ``aggregates_sent`` table of one state store."""

    def __init__(self, db: Database):
        self.db = db

    def rows(self, deployment_crn: str | None = None, state: str | None = None) -> list[LedgerRow]:
        """Ledger rows, optionally of one deployment or in one state, by deployment and start."""
        filters = [(c, v) for c, v in (("deployment_crn = ?", deployment_crn), ("state = ?", state)) if v is not None]
        where = " WHERE " + " AND ".join(c for c, _ in filters) if filters else ""
        rows = self.db.query(
            "SELECT deployment_crn, start_ms, end_ms, state, run_id, intent_ms, sent_ms FROM aggregates_sent"
            f"{where} ORDER BY deployment_crn, start_ms",
            [v for _, v in filters],
        )
        return [LedgerRow(r[0], int(r[1]), int(r[2]), r[3], r[4], int(r[5]), r[6]) for r in rows]

    def states(self, deployment_crn: str) -> dict[tuple[int, int], LedgerRow]:
        """One deployment's rows by ``(start_ms, end_ms)``."""
        return {(r.start_ms, r.end_ms): r for r in self.rows(deployment_crn)}

    def intend(self, deployment_crn: str, start_ms: int, end_ms: int, run_id: str, now_ms: int) -> bool:
        """Record that ``run_id`` is about to send this window. Returns: False when any run did so before."""
        cur = self.db.execute(
            "INSERT INTO aggregates_sent (deployment_crn, start_ms, end_ms, state, run_id, intent_ms) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (deployment_crn, start_ms, end_ms) DO NOTHING",
            (deployment_crn, int(start_ms), int(end_ms), SENDING, run_id, int(now_ms)),
        )
        return bool(cur.rowcount == 1)

    def hold(self, deployment_crn: str, start_ms: int, end_ms: int, run_id: str, now_ms: int) -> None:
        """Record that a settled window waits for its queued labels (nothing when it has a row already)."""
        self.db.execute(
            "INSERT INTO aggregates_sent (deployment_crn, start_ms, end_ms, state, run_id, intent_ms) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (deployment_crn, start_ms, end_ms) DO NOTHING",
            (deployment_crn, int(start_ms), int(end_ms), HELD, run_id, int(now_ms)),
        )

    def release(self, row: LedgerRow, run_id: str, now_ms: int) -> bool:
        """Turn a held window into ``run_id``'s intent to send it. Returns: False if another run did."""
        cur = self.db.execute(
            "UPDATE aggregates_sent SET state = ?, run_id = ?, intent_ms = ? WHERE deployment_crn = ? "
            "AND start_ms = ? AND end_ms = ? AND state = ?",
            (SENDING, run_id, int(now_ms), row.deployment_crn, row.start_ms, row.end_ms, HELD),
        )
        return bool(cur.rowcount == 1)

    def take_over(self, row: LedgerRow, run_id: str, now_ms: int) -> bool:
        """Make an unfinished send (``sending`` by a run that died) ours. Returns: False if another run did."""
        cur = self.db.execute(
            "UPDATE aggregates_sent SET run_id = ?, intent_ms = ? WHERE deployment_crn = ? AND start_ms = ? "
            "AND end_ms = ? AND state = ? AND run_id = ?",
            (run_id, int(now_ms), row.deployment_crn, row.start_ms, row.end_ms, SENDING, row.run_id),
        )
        return bool(cur.rowcount == 1)

    def mark_sent(self, deployment_crn: str, start_ms: int, end_ms: int, now_ms: int) -> None:
        self.db.execute(
            "UPDATE aggregates_sent SET state = ?, sent_ms = ? WHERE deployment_crn = ? AND start_ms = ? "
            "AND end_ms = ?",
            (SENT, int(now_ms), deployment_crn, int(start_ms), int(end_ms)),
        )

    def record_sent(self, windows: Iterable[tuple[str, int, int]], run_id: str, now_ms: int) -> int:
        """Record windows found sent already (a rebuild reads them from the metrics store). Returns: how many."""
        data = [(crn, int(s), int(e), SENT, run_id, int(now_ms), int(now_ms)) for crn, s, e in windows]
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO aggregates_sent (deployment_crn, start_ms, end_ms, state, run_id, intent_ms, sent_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (deployment_crn, start_ms, end_ms) DO NOTHING",
                data,
            )
        return len(data)
