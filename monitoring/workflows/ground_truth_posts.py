"""Ground truth posted exactly once: each chunk of source rows joined to predictions, intents recorded
before the posts, and the unfinished intents of earlier runs claimed, read back and settled."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from cmlbase.clock import iso_exact
from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError, PlatformError
from monitoring.core.logs import KV
from monitoring.domain.data.label_join import Hit, PredictionIndex, Tally, label_reader
from monitoring.domain.data.sources.chunks import Chunk
from monitoring.domain.data.sources.schema import event_times, text_of
from monitoring.state.ground_truth_ledger import INTENT, Entry, GroundTruthLedger
from monitoring.workflows.context import Context

log = logging.getLogger(__name__)

#: Posted with each label: the run that posted it (read back to settle an unfinished intent).
RUN_KEY = "ground_truth_run"
#: Unfinished intents settled per run (more wait for the next run).
SETTLE_LIMIT = 50_000


@dataclass
class StoreFailures:
    """Label posts the metrics store failed (not refused): the run stops reading and fails with exit 3."""

    count: int = 0
    first: PlatformError | None = None

    def post(self, ctx: Context, entries: list[Entry], run: str) -> list[str]:
        """Post each entry's label (with the run that posted it); returns the uuids that landed."""
        label_key = ctx.cfg.windows.label_key
        posts = ctx.platform.metrics.post_labels(
            [(e.uuid, {label_key: e.label, RUN_KEY: run}) for e in entries], ctx.cfg.ground_truth.concurrency
        )
        failed = posts.store_failed
        if failed:
            self.count += failed
            self.first = self.first or posts.first_failure
        return posts.posted


def settle_intents(
    ctx: Context, ledger: GroundTruthLedger, tally: Tally, run: str, now: int, failures: StoreFailures
) -> None:
    """Finish the intents of earlier runs: done if the record holds the label already, else posted again."""
    label_key = ctx.cfg.windows.label_key
    before = now - to_ms(ctx.cfg.ground_truth.settle_after)
    # claimed before they are read back: a run settling at the same time leaves them to this one
    intents = ledger.claim_unfinished(ledger.unfinished(before, SETTLE_LIMIT), run, before, now)
    waiting = ledger.counts()[INTENT] - len(intents)
    if waiting:
        tally.count("intents_waiting", waiting)
        log.info("recent unfinished intents wait for settle_after (a post may be in flight) %s", KV(count=waiting))
    if not intents:
        return
    chunk_ms = to_ms(ctx.cfg.ground_truth.read_chunk)
    by_crn: dict[str, list[Entry]] = {}
    for e in intents:
        by_crn.setdefault(e.deployment_crn, []).append(e)
    has_label: set[str] = set()
    found: set[str] = set()
    for crn, entries in by_crn.items():
        wanted = {e.uuid for e in entries}
        lo, hi = min(e.start_ms for e in entries), max(e.start_ms for e in entries) + 1
        for _, _, records in ctx.platform.metrics.read_chunks(crn, lo, hi, chunk_ms):
            for r in records:
                uuid = r.get("predictionUuid")
                if uuid in wanted:
                    found.add(uuid)
                    if isinstance(r.get("metrics"), dict) and label_key in r["metrics"]:
                        has_label.add(uuid)
    already = [e for e in intents if e.uuid in has_label]
    ledger.mark_done((e.uuid for e in already), now)
    tally.count("settled_posted_before", len(already))
    again = [e for e in intents if e.uuid in found and e.uuid not in has_label]
    posted = failures.post(ctx, again, run)
    ledger.mark_done(posted, ctx.platform.clock.now_ms())
    tally.count("settled_reposted", len(posted))
    tally.count("not_posted", len(again) - len(posted))
    lost = len(intents) - len(already) - len(again)
    if lost:
        tally.count("settled_no_record", lost)
        log.warning("unfinished intents whose prediction record was not found stay open %s", KV(count=lost))
    log.info("unfinished intents settled %s", KV(posted_before=len(already), reposted=len(posted)))


def _digest(key: Any, label: Any, at: int) -> str:
    """A source row as an earlier run read it: its key, label and event time."""
    return hashlib.sha256(json.dumps([str(key), str(label), int(at)]).encode()).hexdigest()[:32]


class Poster:
    """Joins chunks of labels to predictions and posts each prediction's label exactly once.

    Args:
        now: the run's time: rows dated more than ``future_tolerance`` after it are quarantined
            (``future_dated``), and the watermark (``latest``) never passes it.
        before: the watermark before this run (SQL rows dated before it are counted ``late``).
        sql: the source is a query: rows re-read within the lateness allowance count once
            (``reread``), and a result without the needed columns fails the run.
    """

    def __init__(
        self,
        ctx: Context,
        ledger: GroundTruthLedger,
        index: PredictionIndex,
        tally: Tally,
        failures: StoreFailures,
        *,
        now: int,
        before: int | None,
        sql: bool,
    ):
        self.ctx, self.ledger, self.index, self.tally = ctx, ledger, index, tally
        self.failures, self.now, self.before, self.sql = failures, now, before, sql
        self.run = ctx.platform.run_id
        gt = ctx.cfg.ground_truth
        self.gt = gt
        self.label_col = gt.label_column or ctx.cfg.model.label.name
        self.read_label = label_reader(ctx.cfg.model)
        self.horizon = now + to_ms(gt.future_tolerance)
        self.latest: int | None = None
        self.rows = 0

    def _columns(self, chunk: Chunk, name: str) -> None:
        needed = {"key": self.gt.key_col, "label": self.label_col, "event time": self.gt.source.time_column}
        missing = [f"{col!r} ({what})" for what, col in needed.items() if col not in chunk.frame.columns]
        if missing:
            raise DataError(
                f"{name}: the query's result has no column {', '.join(missing)}; it has {list(chunk.frame.columns)[:20]}"
            )

    def take(self, chunk: Chunk, name: str) -> None:
        """Join one chunk, record the intents, post, mark done (``name``: the source, for messages)."""
        for where, problem, text in chunk.bad_lines:
            self.tally.miss("bad_row", where, problem=problem, line=text)
        frame = chunk.frame
        if frame.empty:
            return
        if self.sql:
            self._columns(chunk, name)
        self.rows += len(frame)
        src = self.gt.source
        times, bad_time = event_times(frame[src.time_column], src.time_format)
        keys, labels = frame[self.gt.key_col].tolist(), frame[self.label_col].tolist()
        dated = ~bad_time & (times <= self.horizon)
        if dated.any():  # a future-dated row never moves the watermark, nor does it pass the run's time
            newest = min(int(times[dated].max()), self.now)
            self.latest = newest if self.latest is None else max(self.latest, newest)
        digests = [_digest(k, y, t) for k, y, t in zip(keys, labels, times.tolist())] if self.sql else []
        seen = self.ledger.seen_rows(d for d, ok in zip(digests, dated) if ok) if self.sql else set()
        rows, fresh_rows = [], []
        for i, (raw_key, raw_label) in enumerate(zip(keys, labels)):
            where, at = chunk.locate(i), None if bad_time[i] else int(times[i])
            if at is not None and at > self.horizon:
                self.tally.miss("future_dated", where, key=raw_key, label=raw_label, time=iso_exact(at))
                continue
            if self.sql and at is not None:
                if digests[i] in seen:
                    self.tally.count("reread")
                    continue
                fresh_rows.append((digests[i], at))
                if self.before is not None and at < self.before:
                    self.tally.count("late")
            row = self._row(where, raw_key, raw_label, at)
            if row is not None:
                rows.append(row)
        self._post(self._entries(rows))
        self.ledger.see_rows(fresh_rows, self.now)

    def _entries(self, rows: list[tuple[str, Any, int, str]]) -> list[Entry]:
        """The rows' labels to post: each joined to its prediction, repeats counted."""
        posted = self.ledger.by_key_and_time((key, at) for key, _, at, _ in rows)
        chosen: dict[str, tuple[Hit, Any, str, int, str]] = {}
        for key, value, at, where in rows:
            self._join(key, value, at, where, posted, chosen)
        known = self.ledger.entries(chosen)
        fresh = []
        label_key = self.ctx.cfg.windows.label_key
        for uuid, (hit, value, key, at, where) in chosen.items():
            entry = known.get(uuid)
            if entry is not None:
                self._repeat(entry.label, value, where, key, uuid)
                continue
            fresh.append(Entry(uuid, hit.deployment_crn, hit.start_ms, label_key, value, where, "", self.run, key, at))
        return fresh

    def _row(self, where: str, raw_key: Any, raw_label: Any, at: int | None) -> tuple[str, Any, int, str] | None:
        """A source row as ``(key, label to post, event time, where)``; None (counted) when it cannot be."""
        try:
            key = text_of(raw_key)
        except ValueError:
            key = None
        if key is None or at is None or _blank(raw_label):
            what = "key" if key is None else "event time" if at is None else "label"
            self.tally.miss("bad_row", where, key=raw_key, label=raw_label, problem=f"{what} missing or unreadable")
            return None
        value = self.read_label(raw_label)
        if value is None:
            self.tally.miss("bad_label", where, key=key, label=raw_label)
            return None
        return key, value, at, where

    def _join(self, key: str, value: Any, at: int, where: str, posted: dict, chosen: dict) -> None:
        """Find the row's prediction: a row posted before (same key and time) is a repeat, never joined again."""
        before = posted.get((key, at))
        if before is not None:
            self._repeat(before.label, value, where, key, before.uuid)
            return
        hit, why = self.index.find(key, at)
        if hit is None:
            self.tally.miss(why, where, key=key, label=value, time=iso_exact(at))
            return
        earlier = chosen.get(hit.uuid)
        if earlier is not None:
            self._repeat(earlier[1], value, where, key, hit.uuid)
            return
        chosen[hit.uuid] = (hit, value, key, at, where)

    def _repeat(self, first: Any, value: Any, where: str, key: str, uuid: str) -> None:
        same = json.dumps(first) == json.dumps(value)
        self.tally.miss(
            "duplicate" if same else "conflicting", where, key=key, label=value, prediction=uuid, kept=first
        )

    def _post(self, fresh: list[Entry]) -> None:
        ctx = self.ctx
        recorded = self.ledger.record_intents(fresh, ctx.platform.clock.now_ms())
        if len(recorded) < len(fresh):  # another run recorded these between our lookup and insert
            self.tally.count("duplicate", len(fresh) - len(recorded))
        if not recorded:
            return
        posted = self.failures.post(ctx, recorded, self.run)
        self.ledger.mark_done(posted, ctx.platform.clock.now_ms())
        self.tally.count("posted", len(posted))
        if len(posted) < len(recorded):
            self.tally.count("not_posted", len(recorded) - len(posted))
            log.warning(
                "labels not posted stay recorded as intents for the next run %s", KV(count=len(recorded) - len(posted))
            )


def _blank(value: Any) -> bool:
    try:
        return text_of(value) is None
    except ValueError:
        return False
