"""Ground truth that survives a crash: a run's labels as intents, dead runs' intents resolved, posts checked first.

``RunLabels`` wraps a traffic run's sending: it holds a lease that says the run is alive,
writes every request's label as an intent before the first request leaves, and queues each
answer's label (moving its intent) in batches. ``recover_intents`` gives the intents of a run
that died (SIGKILL, a store locked past its busy timeout) their labels: each intent is looked up
in the metrics store by the request's features among the deployment's unlabelled records since
the intent was written; one found gets its label queued under the record's uuid, one not found
never reached the model and is dropped. ``confirm_in_doubt`` checks labels whose post started
but was never marked done against their records, so a post that landed is never repeated.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from monitoring.core.durations import to_ms
from monitoring.core.errors import MonitoringError, PlatformError
from monitoring.core.logs import KV
from monitoring.domain.data.requests import values_key
from monitoring.domain.records.keys import END_KEY, START_KEY, UUID_KEY
from monitoring.state.label_queue import InDoubt, Intent, run_lease
from monitoring.state.leases import Lease, holder_name
from monitoring.workflows.context import Context

log = logging.getLogger(__name__)

#: Records this much before an intent was written still count as its request's (clocks of two processes).
SLACK_MS = 5_000
#: Labels checked or queued per transaction.
BATCH = 200
#: Labels in doubt read per round.
IN_DOUBT_ROUND = 5_000


class RunLabels:
    """One run's labels, durable before any request is sent. Use as a context manager around the sending.

    Args:
        ctx: the run's context.
        deployment_crn: the deployment the requests go to.
        requests: the request bodies, in slot order.
        labels: each request's ground truth.
        delay_ms: a label falls due this long after its answer, unless ``due_ms`` gives each one's time.
    """

    def __init__(
        self,
        ctx: Context,
        deployment_crn: str,
        requests: Sequence[dict[str, Any]],
        labels: Sequence[Any],
        delay_ms: int | None = None,
        due_ms: Sequence[int] | None = None,
    ):
        self.ctx, self.crn, self.requests, self.labels = ctx, deployment_crn, requests, labels
        self.delay_ms, self.due_ms = delay_ms, due_ms
        self.run_id = holder_name(ctx.platform.run_id)
        self.pending: list[tuple[int, str, str, Any, int, int]] = []
        self.queued = 0
        self._lease: Lease | None = None

    def __enter__(self) -> RunLabels:
        store = self.ctx.store
        self._lease = store.leases.hold(run_lease(self.run_id), self.run_id, wait_s=0, what="this run's labels")
        rows = [
            (i, req, self.labels[i], self.delay_ms, None if self.due_ms is None else self.due_ms[i])
            for i, req in enumerate(self.requests)
        ]
        try:
            store.label_queue.intend(self.run_id, self.crn, rows, self.ctx.platform.clock.now_ms())
        except BaseException:
            self._release()
            raise
        return self

    def answered(self, slot: int, uuid: str, at_ms: int) -> None:
        """Request ``slot`` got the answer ``uuid`` at ``at_ms``: its label is queued with the next batch."""
        due = self.due_ms[slot] if self.due_ms is not None else at_ms + int(self.delay_ms or 0)
        self.pending.append((slot, uuid, self.crn, self.labels[slot], int(due), int(at_ms)))
        if len(self.pending) >= BATCH:
            self._flush(last=False)

    def _flush(self, last: bool) -> None:
        self.ctx.store.label_queue.answered(self.run_id, self.pending, last=last)
        self.queued += len(self.pending)
        self.pending = []

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is None:
                self._flush(last=True)  # every request ended: an intent left got no answer
                return
            try:
                self._flush(last=False)  # intents stay: a request cut short may have been answered
            except MonitoringError as error:
                log.warning("labels not queued, kept as intents %s", KV(labels=len(self.pending), error=str(error)))
            if isinstance(exc, MonitoringError):
                self._say_kept(exc)
        except MonitoringError as error:  # the last batch could not be written
            self._say_kept(error)
            raise
        finally:
            self._release()

    def _say_kept(self, exc: MonitoringError) -> None:
        kept = len(self.requests) - self.queued
        exc.verdict_fields["label_intents_kept"] = kept
        log.warning(
            "requests without a queued label keep their intents; the next traffic run queues the label of "
            "each one the metrics store recorded %s",
            KV(intents=kept, run=self.run_id),
        )

    def _release(self) -> None:
        if self._lease is None:
            return
        try:
            self._lease.release()
        except MonitoringError as exc:  # the lease expires by itself; the next run sees the process gone
            log.warning("run lease not released %s", KV(lease=self._lease.name, error=str(exc)))
        self._lease = None


def _record_key(features: dict[str, Any]) -> tuple[tuple[str, float | str | None], ...] | None:
    """A record's tracked features, all of them, by name."""
    return values_key(features, tuple(sorted(features)))


def _unlabelled(ctx: Context, crn: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
    """The deployment's prediction records in the range with no label and none queued."""
    label_key = ctx.cfg.windows.label_key
    records = [
        r
        for r in ctx.platform.metrics.read(crn, start_ms, end_ms)
        if isinstance(r, dict)
        and r.get(UUID_KEY)
        and isinstance(r.get("metrics"), dict)
        and label_key not in r["metrics"]
    ]
    queued = ctx.store.label_queue.queued(r[UUID_KEY] for r in records)
    return [r for r in records if r[UUID_KEY] not in queued]


def match_intents(ctx: Context, intents: Sequence[Intent], now_ms: int) -> list[tuple[Intent, str, int]]:
    """Find each intent's prediction record: same deployment and features, written after the intent.

    A request sent twice (a retry whose first answer was lost) has several records: the last one
    is the answered one. Intents of one run with the same features take the last records, in order.

    Returns:
        ``(intent, record uuid, answered_ms)`` for each intent found; ``answered_ms`` is the record's start.
    """
    features_key = ctx.cfg.windows.features_key
    found: list[tuple[Intent, str, int]] = []
    by_crn: dict[str, list[Intent]] = defaultdict(list)
    for intent in intents:
        by_crn[intent.deployment_crn].append(intent)
    for crn, group in by_crn.items():
        start = min(i.created_ms for i in group) - SLACK_MS
        records: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
        for rec in _unlabelled(ctx, crn, start, now_ms + SLACK_MS):
            feats = rec["metrics"].get(features_key)
            key = _record_key(feats) if isinstance(feats, dict) else None
            if key is not None:
                records[key].append(rec)
        buckets: dict[tuple, list[Intent]] = defaultdict(list)
        for intent in group:
            for names in {tuple(n for n, _ in k) for k in records}:
                key = values_key(intent.request, names)
                if key in records:
                    buckets[key].append(intent)
                    break
        for key, wanting in buckets.items():
            recs = sorted(records[key], key=lambda r: (int(r.get(START_KEY) or 0), int(r.get(END_KEY) or 0)))
            found.extend(_pair(sorted(wanting, key=lambda i: (i.created_ms, i.slot)), recs))
    return found


def _pair(intents: list[Intent], records: list[dict[str, Any]]) -> list[tuple[Intent, str, int]]:
    """Pair intents of one features key (oldest first) with the records written after each was."""
    found = []
    runs = [(c, [i for i in intents if i.created_ms == c]) for c in sorted({i.created_ms for i in intents})]
    for n, (created, same) in enumerate(runs):
        until = runs[n + 1][0] - SLACK_MS if n + 1 < len(runs) else None
        mine = [
            r
            for r in records
            if int(r.get(START_KEY) or 0) >= created - SLACK_MS
            and (until is None or int(r.get(START_KEY) or 0) < until)
        ]
        # the answer time kept is the record's start: the key its windows and every look-up of it read by
        # (its end can be far later: a request in flight while a rehearsal's clock jumped)
        for intent, rec in zip(same, mine[-len(same) :]):
            found.append((intent, str(rec[UUID_KEY]), int(rec.get(START_KEY) or rec.get(END_KEY) or created)))
    return found


def recover_intents(ctx: Context) -> int:
    """Queue the labels of dead runs' requests that reached the model; drop the rest of their intents.

    Returns:
        How many labels were queued so.
    """
    queue = ctx.store.label_queue
    total = 0
    for run_id in queue.orphaned_runs():
        intents = queue.intents(run_id)
        try:
            found = match_intents(ctx, intents, ctx.platform.clock.now_ms())
        except PlatformError as exc:  # the intents stay for the next run; this one sends its own traffic
            log.warning("intents of a run that died not resolved, kept %s", KV(run=run_id, error=str(exc)))
            continue
        queue.resolve(run_id, found)
        total += len(found)
        log.warning(
            "a run that died left labels as intents; those its requests reached the model with are queued %s",
            KV(run=run_id, intents=len(intents), queued=len(found), never_sent=len(intents) - len(found)),
        )
    return total


def confirm_in_doubt(ctx: Context, now_ms: int) -> int:
    """Check labels whose post started but was not marked done against their records.

    One on its record is marked posted (never posted again); one not there (or whose answer
    time is unknown, so its record cannot be found) is due again, for the caller to post. When
    the metrics store cannot be read, they stay in doubt (``label_queue.due`` leaves them out).

    Returns:
        How many had landed.
    """
    queue, label_key = ctx.store.label_queue, ctx.cfg.windows.label_key
    # a record is stamped when the model starts on the request; its answer is taken up to a request
    # timeout later (a busy machine can hold a client thread for seconds between the two)
    before = SLACK_MS + to_ms(ctx.cfg.scenario.request_timeout)
    landed_total = 0
    while rows := queue.in_doubt(IN_DOUBT_ROUND):
        landed: list[str] = []
        by_crn: dict[str, list[InDoubt]] = defaultdict(list)
        for row in rows:
            if row.answered_ms is not None:
                by_crn[row.deployment_crn].append(row)
        try:
            for crn, group in by_crn.items():
                wanted = {r.uuid for r in group}
                lo, hi = min(r.answered_ms for r in group), max(r.answered_ms for r in group)
                for rec in ctx.platform.metrics.read(crn, lo - before, hi + SLACK_MS):
                    metrics = rec.get("metrics") if isinstance(rec, dict) else None
                    if isinstance(metrics, dict) and rec.get(UUID_KEY) in wanted and label_key in metrics:
                        landed.append(str(rec[UUID_KEY]))
        except PlatformError as exc:  # unchecked labels stay in doubt: not posted again before they are checked
            log.warning("posts in doubt not checked, they wait %s", KV(in_doubt=len(rows), error=str(exc)))
            return landed_total
        ctx.store.label_queue.mark_posted(landed, now_ms)
        on_records = set(landed)
        queue.clear_posting([r for r in rows if r.uuid not in on_records])
        landed_total += len(landed)
        log.warning(
            "posts cut short were checked against their records %s",
            KV(in_doubt=len(rows), landed=len(landed), to_post_again=len(rows) - len(landed)),
        )
    return landed_total
