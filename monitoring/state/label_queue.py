"""The crash-safe label queue: a label is written as an intent before its request is sent, and posted idempotently.

A traffic run writes one intent per request (its body, its label, when the label falls due)
in one transaction before the first request leaves. Each answer moves its intent into
``pending_labels`` under the prediction's uuid (a batch per transaction), so a label is durable
before the answer is accepted and no answered prediction can lose it. Intents left behind by a
run that died (SIGKILL, a store locked past its busy timeout) are resolved by the next run
against the metrics store (``workflows/labels.py``), or discarded if the request never
reached the model. A run claims the labels it posts before it starts (``posting_ms`` and
``posting_run``, one conditional update per label: only the rows it changed are its to post),
holding a posting lease while it posts. A claim whose run is gone (not posted) may or may not
have landed, and is checked against its record before it is repeated; a live run's claims are
never in doubt.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitoring.core.db import Database
from monitoring.core.errors import DataError
from monitoring.state.leases import Leases, holder_is_dead


# Labels were integers; they are any JSON value now ("Yes", 350000.0), stored as JSON text
# (schema version 6 makes the column text).
def label_text(value: Any) -> str:
    """A label as stored: JSON text (a string or a finite number).

    Raises:
        DataError: a label that is neither.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"label {value!r} is not a string or a number")
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        raise DataError(f"label {value!r} is not a finite number") from None


def label_value(stored: Any) -> Any:
    """A stored label: JSON text (a bare number where the column was still an integer one)."""
    return json.loads(stored) if isinstance(stored, str) else stored


RUN_LEASE_PREFIX = "labels:"
POSTING_LEASE_PREFIX = "posting:"


def run_lease(run_id: str) -> str:
    """The name of the lease that says run ``run_id`` is alive."""
    return f"{RUN_LEASE_PREFIX}{run_id}"


def posting_lease(holder: str) -> str:
    """The name of the lease that says ``holder`` is posting the labels it claimed."""
    return f"{POSTING_LEASE_PREFIX}{holder}"


@dataclass(frozen=True)
class Intent:
    """A request about to be sent (or sent by a run that died): what its answer's label will be."""

    run_id: str
    slot: int
    deployment_crn: str
    request: dict[str, Any]
    label: Any
    delay_ms: int | None
    due_ms: int | None
    created_ms: int

    def due_after(self, answered_ms: int) -> int:
        """When the label falls due for an answer at ``answered_ms``."""
        return int(self.due_ms) if self.due_ms is not None else int(answered_ms) + int(self.delay_ms or 0)


@dataclass(frozen=True)
class InDoubt:
    """A label whose post started but was never marked done: it may or may not be on its record."""

    uuid: str
    deployment_crn: str
    label: Any
    answered_ms: int | None
    due_ms: int
    posting_ms: int = 0
    posting_run: str = ""


class LabelQueue:
    """The pending labels of one state store, their one address (``StateStore.label_queue``): the
    ``label_intents`` table and the ``pending_labels`` queue, from intent to posted."""

    def __init__(self, db: Database, leases: Leases):
        self.db = db
        self.leases = leases

    # -- intents -------------------------------------------------------------------------------
    def intend(
        self,
        run_id: str,
        deployment_crn: str,
        rows: Iterable[tuple[int, dict[str, Any], Any, int | None, int | None]],
        now_ms: int,
    ) -> int:
        """Record, in one transaction, the requests a run is about to send.

        Args:
            run_id: the run (a lease holder name: ``holder_name``).
            deployment_crn: the deployment the requests go to.
            rows: ``(slot, request body, label, delay_ms, due_ms)``: the label falls due
                ``delay_ms`` after the answer, or at ``due_ms`` when that is given.
            now_ms: the platform time before the first request (the metrics store's time).

        Returns:
            How many intents were written.
        """
        data = [
            (
                run_id,
                int(slot),
                deployment_crn,
                json.dumps(request, sort_keys=True),
                json.dumps(label),
                None if delay is None else int(delay),
                None if due is None else int(due),
                int(now_ms),
            )
            for slot, request, label, delay, due in rows
        ]
        with self.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO label_intents (run_id, slot, deployment_crn, request, label, delay_ms, due_ms, created_ms) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, slot) DO NOTHING",
                data,
            )
        return len(data)

    def answered(self, run_id: str, rows: Sequence[tuple[int, str, str, Any, int, int]], *, last: bool = False) -> None:
        """Queue the labels of answered requests and drop their intents, in one transaction.

        Args:
            run_id: the run that sent the requests.
            rows: ``(slot, uuid, deployment_crn, label, due_ms, answered_ms)``; a uuid queued
                already (another run resolved it first) keeps its first row.
            last: the run saw every request end: drop all its other intents too (no answer came).
        """
        with self.db.transaction() as tx:
            self._queue(tx, [(u, crn, label, due, at) for _, u, crn, label, due, at in rows])
            if last:
                tx.execute("DELETE FROM label_intents WHERE run_id = ?", (run_id,))
            else:
                tx.executemany(
                    "DELETE FROM label_intents WHERE run_id = ? AND slot = ?", [(run_id, r[0]) for r in rows]
                )

    def add(self, rows: Sequence[tuple[str, str, Any, int, int | None]]) -> None:
        """Queue labels found otherwise (``state rebuild``): ``(uuid, deployment_crn, label, due_ms,
        answered_ms)``, in one transaction; a uuid queued already keeps its row."""
        with self.db.transaction() as tx:
            self._queue(tx, rows)

    @staticmethod
    def _queue(tx: Database, rows: Iterable[tuple[str, str, Any, int, int | None]]) -> None:
        tx.executemany(
            "INSERT INTO pending_labels (uuid, deployment_crn, label, due_ms, answered_ms) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (uuid) DO NOTHING",
            [
                (str(u), str(crn), label_text(label), int(due), None if at is None else int(at))
                for u, crn, label, due, at in rows
            ],
        )

    def intents(self, run_id: str | None = None) -> list[Intent]:
        """Intents not resolved yet (of one run, or all), by run and slot."""
        where, args = (" WHERE run_id = ?", (run_id,)) if run_id is not None else ("", ())
        rows = self.db.query(
            "SELECT run_id, slot, deployment_crn, request, label, delay_ms, due_ms, created_ms FROM label_intents"
            f"{where} ORDER BY run_id, slot",
            args,
        )
        return [
            Intent(
                r[0],
                int(r[1]),
                r[2],
                json.loads(r[3]),
                json.loads(r[4]),
                None if r[5] is None else int(r[5]),
                None if r[6] is None else int(r[6]),
                int(r[7]),
            )
            for r in rows
        ]

    def orphaned_runs(self) -> list[str]:
        """Runs with intents that can no longer get answers: their lease expired or was never
        taken, or their process died on this host."""
        runs = [str(r[0]) for r in self.db.query("SELECT DISTINCT run_id FROM label_intents ORDER BY run_id")]
        return [r for r in runs if not self.leases.held_by(run_lease(r), r) or holder_is_dead(r)]

    def resolve(self, run_id: str, found: Sequence[tuple[Intent, str, int]]) -> None:
        """Queue the labels of a dead run's requests found in the metrics store; drop its other
        intents (never answered) and its lease, in one transaction.

        Args:
            found: ``(intent, uuid of its prediction record, answered_ms)``.
        """
        rows = [(uuid, i.deployment_crn, i.label, i.due_after(at), at) for i, uuid, at in found]
        with self.db.transaction() as tx:
            self._queue(tx, rows)
            tx.execute("DELETE FROM label_intents WHERE run_id = ?", (run_id,))
            tx.execute("DELETE FROM leases WHERE name = ?", (run_lease(run_id),))

    def queued(self, uuids: Iterable[str]) -> set[str]:
        """Which of ``uuids`` have a label in the queue (posted or not)."""
        wanted = list(dict.fromkeys(str(u) for u in uuids))
        found: set[str] = set()
        for i in range(0, len(wanted), 500):
            chunk = wanted[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            found.update(
                str(r[0]) for r in self.db.query(f"SELECT uuid FROM pending_labels WHERE uuid IN ({marks})", chunk)
            )
        return found

    # -- posting ---------------------------------------------------------------------------------
    def claim(self, uuids: Iterable[str], holder: str, now_ms: int) -> list[str]:
        """Claim labels for a post that starts now: one conditional update each, in one transaction.

        Args:
            holder: the claiming run (it holds ``posting_lease(holder)`` while it posts).

        Returns:
            The uuids this call claimed: not posted and not claimed by anyone (another run's claim,
            live or in doubt, is left alone). Only these are the caller's to post.
        """
        return self.db.each_changing_one(
            "UPDATE pending_labels SET posting_ms = ?, posting_run = ? "
            "WHERE uuid = ? AND posted_ms IS NULL AND posting_ms IS NULL",
            ((str(u), (int(now_ms), holder, str(u))) for u in uuids),
        )

    def doubt_due(self, now_ms: int) -> int:
        """Put every due label not marked posted in doubt, so the next run checks its record before
        posting it (after a restore: a newer store than the backup may have posted it). Returns how many."""
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE pending_labels SET posting_ms = ? WHERE posted_ms IS NULL AND posting_ms IS NULL AND due_ms <= ?",
                (int(now_ms), int(now_ms)),
            )
            return max(0, int(cur.rowcount))

    def posting_runs(self) -> set[str]:
        """Runs holding claims now: their posting lease is held and their process (on this host) lives."""
        runs = self.db.query(
            "SELECT DISTINCT posting_run FROM pending_labels WHERE posting_ms IS NOT NULL AND posted_ms IS NULL "
            "AND posting_run IS NOT NULL"
        )
        return {
            str(r[0])
            for r in runs
            if self.leases.held_by(posting_lease(str(r[0])), str(r[0])) and not holder_is_dead(str(r[0]))
        }

    def in_doubt(self, limit: int) -> list[InDoubt]:
        """Claims whose run is gone and which were never marked posted, by deployment and answer time.

        The claims of a run that is posting now (``posting_runs``) are not in doubt: its post is on its way.
        """
        live = sorted(self.posting_runs())
        skip = f" AND COALESCE(posting_run, '') NOT IN ({', '.join('?' * len(live))})" if live else ""
        rows = self.db.query(
            "SELECT uuid, deployment_crn, label, answered_ms, due_ms, posting_ms, posting_run FROM pending_labels "
            f"WHERE posting_ms IS NOT NULL AND posted_ms IS NULL{skip} ORDER BY deployment_crn, answered_ms, uuid "
            "LIMIT ?",
            (*live, int(limit)),
        )
        return [
            InDoubt(
                str(r[0]),
                str(r[1]),
                label_value(r[2]),
                None if r[3] is None else int(r[3]),
                int(r[4]),
                int(r[5]),
                str(r[6] or ""),
            )
            for r in rows
        ]

    def waiting(self, now_ms: int, limit: int) -> int:
        """How many labels are due at ``now_ms`` and not posted (in doubt or not), counted up to ``limit``."""
        row = self.db.query_aggregate(
            "SELECT COUNT(*) FROM (SELECT 1 FROM pending_labels WHERE posted_ms IS NULL AND due_ms <= ? LIMIT ?) AS due",
            (int(now_ms), int(limit)),
        )
        return int(row[0])

    def earliest_unread(self, deployment_crn: str, read_ms: int | None) -> int | None:
        """The earliest answer time of the deployment's labels not posted, or posted at or after ``read_ms``.

        Args:
            read_ms: when the deployment's windows were last read (its watermark); None: never.

        Returns:
            That time (the due time for a label queued without one), or None when there is none.
        """
        row = self.db.query_one(
            "SELECT MIN(COALESCE(answered_ms, due_ms)) FROM pending_labels WHERE deployment_crn = ? "
            "AND (posted_ms IS NULL OR posted_ms >= ?)",
            (deployment_crn, 0 if read_ms is None else int(read_ms)),
        )
        return None if row is None or row[0] is None else int(row[0])

    def unposted_times(self, deployment_crn: str, since_ms: int) -> list[int]:
        """Answer times (due times when unknown) of the deployment's labels not posted, from ``since_ms`` on."""
        rows = self.db.query(
            "SELECT DISTINCT COALESCE(answered_ms, due_ms) FROM pending_labels WHERE deployment_crn = ? "
            "AND posted_ms IS NULL AND COALESCE(answered_ms, due_ms) >= ?",
            (deployment_crn, int(since_ms)),
        )
        return [int(r[0]) for r in rows]

    def release(self, uuids: Iterable[str], holder: str) -> None:
        """Give back claims of ``holder`` that were never sent (not in doubt: due again for anyone)."""
        with self.db.transaction() as tx:
            tx.executemany(
                "UPDATE pending_labels SET posting_ms = NULL, posting_run = NULL "
                "WHERE uuid = ? AND posted_ms IS NULL AND posting_run = ?",
                [(str(u), holder) for u in uuids],
            )

    def clear_posting(self, checked: Iterable[InDoubt]) -> None:
        """Forget claims in doubt that were checked (the label is not on its record): due again.

        Only the claim as it was read is cleared: one a concurrent checker cleared and another run
        claimed since is left to that run.
        """
        with self.db.transaction() as tx:
            tx.executemany(
                "UPDATE pending_labels SET posting_ms = NULL, posting_run = NULL WHERE uuid = ? AND posted_ms IS NULL "
                "AND posting_ms = ? AND COALESCE(posting_run, '') = ?",
                [(d.uuid, int(d.posting_ms), d.posting_run) for d in checked],
            )

    def due(self, now_ms: int, limit: int) -> list[tuple[str, Any]]:
        """Labels due at ``now_ms``, not posted and not in doubt (``in_doubt``), oldest first.

        Returns: ``[(uuid, label)]``.
        """
        rows = self.db.query(
            "SELECT uuid, label FROM pending_labels WHERE posted_ms IS NULL AND posting_ms IS NULL AND due_ms <= ? "
            "ORDER BY due_ms, uuid LIMIT ?",
            (int(now_ms), int(limit)),
        )
        return [(str(u), label_value(lab)) for u, lab in rows]

    def mark_posted(self, uuids: Iterable[str], posted_ms: int) -> int:
        """Mark labels posted; a label already posted keeps its first time. Returns: how many were newly marked."""
        count = 0
        with self.db.transaction() as db:
            for u in uuids:
                count += max(
                    db.execute(
                        "UPDATE pending_labels SET posted_ms = ? WHERE uuid = ? AND posted_ms IS NULL",
                        (int(posted_ms), str(u)),
                    ).rowcount,
                    0,
                )
        return count

    def counts(self) -> dict[str, int]:
        """How many labels are queued and not posted yet (``pending``), and how many were posted."""
        row = self.db.query_aggregate("SELECT COUNT(*) - COUNT(posted_ms), COUNT(posted_ms) FROM pending_labels")
        return {"pending": int(row[0]), "posted": int(row[1])}
