"""The ground-truth job's ledger in the state store: which label each prediction got, its watermark, files read.

Exactly once: a label's *intent* is committed before it is posted and marked *done* after. A run
that finds an intent of an earlier run (killed, or its post failed) claims it, then reads the
prediction's record back before posting again. A prediction has one ledger row, so a second
label for it (a re-run, an overlapping file) is never posted; each row keeps the source row's key
and event time, so a re-sent row is known. Files are recorded read, or quarantined with why; SQL
rows read within the lateness allowance are kept as digests, so a re-read counts them once.

Schema: migrations 7 and 8 of ``monitoring/state/migrations.py`` (``ground_truth_ledger``,
``ground_truth_watermark``, ``ground_truth_files``, ``ground_truth_rows``), applied when the store opens.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from monitoring.core.db import Database

INTENT, DONE = "intent", "done"
#: ``file_state`` of a file read completely.
READ = "read"
_LOOKUP = 500  # uuids per IN (...) lookup


@dataclass(frozen=True)
class Entry:
    """One prediction's label in the ledger."""

    uuid: str
    deployment_crn: str
    start_ms: int
    label_key: str
    label: Any
    source_row: str | None
    state: str
    run: str
    source_key: str | None = None
    event_ms: int | None = None


def _entry(row: Sequence[Any]) -> Entry:
    return Entry(
        str(row[0]),
        str(row[1]),
        int(row[2]),
        str(row[3]),
        json.loads(row[4]),
        row[5],
        str(row[6]),
        str(row[7]),
        None if row[8] is None else str(row[8]),
        None if row[9] is None else int(row[9]),
    )


_ENTRY_COLS = "uuid, deployment_crn, start_ms, label_key, label, source_row, state, run, source_key, event_ms"


class GroundTruthLedger:
    """The ledger of one model's ground truth, in the state store's database.

    Args:
        db: the state store's database (``StateStore.db``, migrated to version 9 or later).
        model: the model whose labels these are.
    """

    def __init__(self, db: Database, model: str):
        self.db, self.model = db, model

    # -- labels ----------------------------------------------------------------------------
    def entries(self, uuids: Iterable[str]) -> dict[str, Entry]:
        """The ledger rows of these predictions (those that have one)."""
        wanted = list(dict.fromkeys(uuids))
        found: dict[str, Entry] = {}
        for i in range(0, len(wanted), _LOOKUP):
            part = wanted[i : i + _LOOKUP]
            marks = ", ".join("?" * len(part))
            rows = self.db.query(
                f"SELECT {_ENTRY_COLS} FROM ground_truth_ledger WHERE model = ? AND uuid IN ({marks})",
                [self.model, *part],
            )
            found.update((e.uuid, e) for e in map(_entry, rows))
        return found

    def by_key_and_time(self, rows: Iterable[tuple[str, int]]) -> dict[tuple[str, int], Entry]:
        """The ledger rows posted for these source rows (key and event time), by ``(key, event_ms)``."""
        wanted = set(rows)
        keys = sorted({k for k, _ in wanted})
        found: dict[tuple[str, int], Entry] = {}
        for i in range(0, len(keys), _LOOKUP):
            part = keys[i : i + _LOOKUP]
            marks = ", ".join("?" * len(part))
            for e in map(
                _entry,
                self.db.query(
                    f"SELECT {_ENTRY_COLS} FROM ground_truth_ledger WHERE model = ? AND source_key IN ({marks})",
                    [self.model, *part],
                ),
            ):
                if e.source_key is not None and e.event_ms is not None and (e.source_key, e.event_ms) in wanted:
                    found.setdefault((e.source_key, e.event_ms), e)
        return found

    def record_intents(self, entries: Iterable[Entry], now_ms: int) -> list[Entry]:
        """Commit the intent to post these labels, in one transaction.

        Returns:
            The entries this call recorded; a prediction that already has a ledger row (another
            run's, or an earlier one of this run) is left out.
        """
        return self.db.each_changing_one(
            f"INSERT INTO ground_truth_ledger (model, {_ENTRY_COLS}, intent_ms) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, uuid) DO NOTHING",
            ((e, self._intent_row(e, now_ms)) for e in entries),
        )

    def _intent_row(self, e: Entry, now_ms: int) -> tuple[Any, ...]:
        label = json.dumps(e.label, allow_nan=False)
        at = None if e.event_ms is None else int(e.event_ms)
        return (
            self.model,
            e.uuid,
            e.deployment_crn,
            int(e.start_ms),
            e.label_key,
            label,
            e.source_row,
            INTENT,
            e.run,
            e.source_key,
            at,
            int(now_ms),
        )

    def mark_done(self, uuids: Iterable[str], now_ms: int) -> int:
        """Mark posted labels done. Returns: how many intents became done."""
        data = [(DONE, int(now_ms), self.model, str(u), INTENT) for u in uuids]
        count = 0
        with self.db.transaction() as db:
            for row in data:
                cur = db.execute(
                    "UPDATE ground_truth_ledger SET state = ?, done_ms = ? WHERE model = ? AND uuid = ? AND state = ?",
                    row,
                )
                count += max(cur.rowcount, 0)
        return count

    def unfinished(self, before_ms: int, limit: int) -> list[Entry]:
        """Intents not marked done (a run was killed mid-post, or a post failed), recorded before
        ``before_ms``, oldest prediction first."""
        rows = self.db.query(
            f"SELECT {_ENTRY_COLS} FROM ground_truth_ledger WHERE model = ? AND state = ? AND intent_ms < ? "
            "ORDER BY start_ms, uuid LIMIT ?",
            (self.model, INTENT, int(before_ms), int(limit)),
        )
        return [_entry(r) for r in rows]

    def claim_unfinished(self, entries: Iterable[Entry], run: str, before_ms: int, now_ms: int) -> list[Entry]:
        """Claim intents of earlier runs to settle them: one conditional update each, in one transaction.

        An intent is claimed only while it is still unfinished and older than ``before_ms``; the
        claim makes it this run's and recent, so a run settling at the same time leaves it alone.

        Returns:
            The entries this call claimed (only these are the caller's to read back and post).
        """
        return self.db.each_changing_one(
            "UPDATE ground_truth_ledger SET run = ?, intent_ms = ? "
            "WHERE model = ? AND uuid = ? AND state = ? AND intent_ms < ?",
            ((e, (run, int(now_ms), self.model, e.uuid, INTENT, int(before_ms))) for e in entries),
        )

    def counts(self) -> dict[str, int]:
        rows = self.db.query(
            "SELECT state, COUNT(*) FROM ground_truth_ledger WHERE model = ? GROUP BY state", (self.model,)
        )
        found = {str(s): int(n) for s, n in rows}
        return {INTENT: found.get(INTENT, 0), DONE: found.get(DONE, 0)}

    # -- where the source was read up to -----------------------------------------------------
    def watermark(self) -> int | None:
        """The latest label event time of the source that a finished run read (epoch ms)."""
        row = self.db.query_one("SELECT event_ms FROM ground_truth_watermark WHERE model = ?", (self.model,))
        return None if row is None else int(row[0])

    def advance_watermark(self, event_ms: int, now_ms: int) -> int:
        """Move the watermark forward (an earlier time is ignored). Returns: the stored watermark."""
        self.db.execute(
            "INSERT INTO ground_truth_watermark (model, event_ms, updated_ms) VALUES (?, ?, ?) ON CONFLICT (model) "
            "DO UPDATE SET event_ms = excluded.event_ms, updated_ms = excluded.updated_ms "
            "WHERE excluded.event_ms > ground_truth_watermark.event_ms",
            (self.model, int(event_ms), int(now_ms)),
        )
        stored = self.watermark()
        assert stored is not None  # written just now
        return stored

    def file_state(self, path: str, size: int, mtime_ns: int, needs: str) -> str | None:
        """What a run made of this file as it is now (same size and modification time): ``READ``
        (completely), why it was quarantined (for the same needed columns), or None (read it)."""
        row = self.db.query_one(
            "SELECT quarantined, needs FROM ground_truth_files WHERE model = ? AND path = ? AND size = ? "
            "AND mtime_ns = ?",
            (self.model, path, int(size), int(mtime_ns)),
        )
        if row is None:
            return None
        if row[0] is None:
            return READ
        return str(row[0]) if row[1] == needs else None

    def files_read(self) -> int:
        """How many files runs have read completely (or quarantined)."""
        return int(self.db.query_aggregate("SELECT COUNT(*) FROM ground_truth_files WHERE model = ?", (self.model,))[0])

    def mark_files_read(self, files: Iterable[tuple[str, int, int]], now_ms: int) -> None:
        """Record files read completely (path, size, mtime_ns); a file read or quarantined before is updated."""
        with self.db.transaction() as db:
            for path, size, mtime_ns in files:
                self._file(db, path, size, mtime_ns, None, None, now_ms)

    def quarantine(self, path: str, size: int, mtime_ns: int, reason: str, needs: str, now_ms: int) -> None:
        """Record a file that cannot be read (left alone until it changes, or other columns are needed)."""
        self._file(self.db, path, size, mtime_ns, reason, needs, now_ms)

    def _file(
        self, db: Database, path: str, size: int, mtime_ns: int, reason: str | None, needs: str | None, now_ms: int
    ) -> None:
        db.execute(
            "INSERT INTO ground_truth_files (model, path, size, mtime_ns, done_ms, quarantined, needs) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (model, path) DO UPDATE SET size = excluded.size, "
            "mtime_ns = excluded.mtime_ns, done_ms = excluded.done_ms, quarantined = excluded.quarantined, "
            "needs = excluded.needs",
            (self.model, path, int(size), int(mtime_ns), int(now_ms), reason, needs),
        )

    # -- SQL rows read within the lateness allowance ---------------------------------------------
    def seen_rows(self, digests: Iterable[str]) -> set[str]:
        """Which of these source rows (their digests) an earlier run read."""
        wanted = list(dict.fromkeys(digests))
        found: set[str] = set()
        for i in range(0, len(wanted), _LOOKUP):
            part = wanted[i : i + _LOOKUP]
            marks = ", ".join("?" * len(part))
            rows = self.db.query(
                f"SELECT digest FROM ground_truth_rows WHERE model = ? AND digest IN ({marks})", [self.model, *part]
            )
            found.update(str(r[0]) for r in rows)
        return found

    def see_rows(self, rows: Iterable[tuple[str, int]], now_ms: int) -> None:
        """Record source rows read (digest, event time), in one transaction."""
        data = [(self.model, d, int(t), int(now_ms)) for d, t in rows]
        if data:
            with self.db.transaction() as db:
                db.executemany(
                    "INSERT INTO ground_truth_rows (model, digest, event_ms, seen_ms) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (model, digest) DO NOTHING",
                    data,
                )

    def forget_rows(self, before_ms: int) -> int:
        """Drop rows older than the span the next query re-reads. Returns: how many."""
        cur = self.db.execute(
            "DELETE FROM ground_truth_rows WHERE model = ? AND event_ms < ?", (self.model, int(before_ms))
        )
        return max(int(cur.rowcount), 0)
