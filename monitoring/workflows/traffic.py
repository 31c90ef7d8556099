"""simulate_traffic: post due ground truth, send a cycle of requests (synthetic or a replayed data set), queue labels."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cmlbase.clock import iso_ms
from monitoring.cmlclient.refs import DeploymentRef, ModelRef
from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError, MonitoringError, PlatformError
from monitoring.core.logs import KV
from monitoring.core.progress import Progress
from monitoring.domain.data.replay import read_plan
from monitoring.domain.data.requests import requests_of
from monitoring.domain.data.scenario import TelcoScenario, drift_level_at
from monitoring.state.label_queue import posting_lease
from monitoring.state.leases import holder_name
from monitoring.workflows.context import Context, Outcome, version_of
from monitoring.workflows.labels import RunLabels, confirm_in_doubt, recover_intents

log = logging.getLogger(__name__)
#: The status and VERDICT field of a traffic run that found the replayed data set exhausted.
REPLAY_EXHAUSTED = "replay_exhausted"

#: More than this share of failed requests fails the run (after per-request retries).
MAX_FAILED_SHARE = 0.05
#: Due labels still waiting after a run are counted up to this many for the verdict.
MAX_REPORTED_WAITING = 100_000
REQUESTS_FAILED_ACTION = (
    "check what the first failure names (the model endpoint, its replicas, the model metrics store: out of "
    "space, unreachable), then re-run; answered predictions keep their queued labels, nothing was lost"
)
LABELS_FAILED_ACTION = (
    "check the model metrics store the error names (out of space: free space on it; unreachable: the "
    "workspace), then re-run: the labels not posted stay queued and are posted then; nothing was lost"
)


@dataclass
class DuePosts:
    """What posting the due labels did: how many landed, and the store's failures.

    Attributes:
        posted: labels posted (or found on their records) and marked posted.
        failed: labels whose post failed because the metrics store failed (not refused); they
            stay queued, unposted.
        first_failure: the first of those failures.
    """

    posted: int = 0
    failed: int = 0
    first_failure: PlatformError | None = None


def post_due_labels(ctx: Context, now_ms: int, label_key: str) -> DuePosts:
    """Post every label whose delay has passed; mark each posted exactly once.

    Claims of runs that are gone are checked against their records first. The run then claims
    the due labels (an atomic update per label, under its posting lease): a label another run
    claimed first is that run's to post, so two runs at once never post one label twice. A label
    whose post failed is never marked posted; the round stops at the first batch with a failure.
    """
    queue = ctx.store.label_queue
    holder = holder_name(ctx.platform.run_id)
    with ctx.store.leases.hold(posting_lease(holder), holder, wait_s=0, what="this run's label posts"):
        result = DuePosts(posted=confirm_in_doubt(ctx, now_ms))  # a post cut short is checked before it is repeated
        while True:
            due = queue.due(now_ms, limit=5000)
            if not due:
                return result
            mine = set(queue.claim([u for u, _ in due], holder, now_ms))
            if len(mine) < len(due):
                log.info("due labels claimed by another run are left to it %s", KV(skipped=len(due) - len(mine)))
            due = [(u, y) for u, y in due if u in mine]
            if not due:
                continue
            posts = ctx.platform.metrics.post_labels([(u, {label_key: y}) for u, y in due])
            queue.mark_posted(posts.posted, now_ms)
            queue.release(posts.not_tried, holder)  # never sent: not in doubt
            result.posted += len(posts.posted)
            result.failed += posts.store_failed
            result.first_failure = result.first_failure or posts.first_failure
            if len(posts.posted) < len(due):
                log.warning("some labels were not posted and stay pending %s", KV(pending=len(due) - len(posts.posted)))
                return result


@dataclass
class Batch:
    """One run's requests and their labels.

    Attributes:
        requests: request bodies, in sending order.
        labels: each request's ground truth (JSON values).
        delay_ms: a label falls due this long after its answer, unless ``due_ms`` gives each one's time.
        due_ms: when each request's label falls due (a replay's label times).
        sent: ``(rows done) -> None``: the run ended; the first ``rows done`` requests got an answer
            or failed for good (a replay moves its position there).
        fields: what the verdict line reports besides the counts.
        summary: how the verdict's summary names what was sent.
    """

    requests: list[dict[str, Any]]
    labels: Sequence[Any]
    delay_ms: int | None = None
    due_ms: list[int] | None = None
    sent: Callable[[int], None] = lambda done: None
    fields: dict[str, Any] = field(default_factory=dict)
    summary: str = "predictions"


def _synthetic(ctx: Context, model: ModelRef, now: int) -> Batch:
    """A cycle of the telco scenario, drifted from ``scenario.drift.start_after`` on."""
    cfg = ctx.cfg
    # Cycles are aligned to multiples of scenario.cycle, so a run a few seconds early or late
    # (cron jitter) still lands in its own cycle; the epoch is the first cycle's start.
    cycle_ms = max(1, to_ms(cfg.scenario.cycle))
    epoch = ctx.store.set_scenario_epoch_if_absent(model.name, now - now % cycle_ms)
    level = drift_level_at(now, epoch, to_ms(cfg.scenario.drift.start_after))
    scenario = TelcoScenario.from_config(cfg, "data.replay")
    frame = scenario.generate(cfg.scenario.rows_per_cycle, ctx.rng(now // cycle_ms, 1), drift_level=level)
    labels = frame[cfg.model.label.name].tolist()
    return Batch(
        requests_of(frame, cfg.model),
        labels,
        delay_ms=to_ms(cfg.scenario.label_delay),
        fields=dict(cycle=(now - epoch) // cycle_ms, drift_level=round(float(level), 2), positives=int(sum(labels))),
    )


def _replay(ctx: Context, model: ModelRef, now: int) -> Batch:
    """The rows of ``data.replay`` whose event time has come and that no earlier run sent.

    Raises:
        DataError: the data set does not match the spec, or changed since the replay started.
    """
    cfg = ctx.cfg
    plan = read_plan(cfg.data.replay, cfg.model, ctx.project_root)
    cycle_ms = max(1, to_ms(cfg.scenario.cycle))
    # The replay's start is one cycle before the first run's cycle: that run sends the first cycle of data.
    epoch = now - now % cycle_ms - cycle_ms
    progress = ctx.store.start_replay(model.name, epoch, len(plan), plan.digest, now)
    if progress.digest != plan.digest:
        raise DataError(
            f"data.replay.source: the data set changed since the replay of {model.name} started "
            f"({progress.total} rows then, {len(plan)} now, {progress.position} sent): nothing was sent; "
            "restore the data, or start the rehearsal afresh (a new state store)"
        )
    first, end = progress.position, max(progress.position, plan.due(progress.epoch_ms, now))
    rows = plan.rows.iloc[first:end]
    label_due = plan.pipeline_time(progress.epoch_ms, plan.label_ms[first:end]).tolist()
    data_now = plan.data_time(progress.epoch_ms, now)
    ctx.store.move_replay(model.name, end, now)  # claimed: a run killed mid-way never sends a row twice
    return Batch(
        requests_of(rows, cfg.model),
        plan.labels(cfg.model)[first:end],
        due_ms=[int(t) for t in label_due],
        sent=lambda done: ctx.store.move_replay(model.name, first + done, ctx.platform.clock.now_ms()),
        fields=dict(
            replay_from=first,
            replay_to=end,
            replay_rows=len(plan),
            data_time=iso_ms(data_now),
            **({REPLAY_EXHAUSTED: True} if first >= len(plan) else {}),
        ),
        summary=f"rows of the replayed data set (rows {first}..{end} of {len(plan)}, data time {iso_ms(data_now)})",
    )


@dataclass
class Sent:
    answered: int = 0
    failures: list[MonitoringError] = field(default_factory=list)
    skipped: int = 0


def _give_back_unsent(batch: Batch, done: int, stopped: bool) -> None:
    """Rows after the first ``done`` go back to the replay, whatever ended the cycle.

    When the cycle was stopped by an error, failing to move the replay back is only logged, so
    the error that stopped it is the one the job reports.
    """
    try:
        batch.sent(done)
    except MonitoringError as exc:
        if not stopped:
            raise
        log.warning("the replay keeps the rows this run claimed %s", KV(rows_done=done, error=str(exc)))


def _send(ctx: Context, model: ModelRef, live: DeploymentRef, batch: Batch) -> Sent:
    """Send the batch concurrently; queue each answered request's label (exactly once, by uuid).

    Every label is an intent before any request leaves (``RunLabels``); a request without an
    answer gets none (its prediction may still be recorded). Once more than ``MAX_FAILED_SHARE``
    failed, the requests not yet started are not sent: they are the batch's last ones (a pool
    takes its tasks in order), so ``Batch.sent`` always learns a prefix.
    """
    cfg, clock = ctx.cfg, ctx.platform.clock
    endpoint = ctx.platform.endpoint(model, cfg.scenario.request_timeout.total_seconds())
    total = len(batch.requests)
    allowed = int(MAX_FAILED_SHARE * total)
    gave_up = threading.Event()
    failed = itertools.count(1)

    def score(i: int) -> tuple[int, str | None, MonitoringError | None]:
        if gave_up.is_set():  # the cycle has failed already: stop hammering a failing endpoint
            return i, None, None
        try:
            _, uuid = endpoint.predict(batch.requests[i])
            return i, uuid, None
        except MonitoringError as exc:
            if next(failed) > allowed:
                gave_up.set()
            return i, None, exc

    sent, done = Sent(), 0
    progress = Progress("predictions", total=total)
    stopped = True  # until the loop ends normally
    try:  # each label is durable (an intent) before its request leaves, queued as its answer arrives
        with (
            RunLabels(ctx, live.crn, batch.requests, batch.labels, batch.delay_ms, batch.due_ms) as queue,
            ThreadPoolExecutor(max_workers=cfg.scenario.concurrency) as pool,
        ):
            for i, uuid, error in pool.map(score, range(total)):
                progress.advance()
                if uuid is None and error is None:
                    sent.skipped += 1
                    continue
                done = i + 1
                if uuid is None:
                    sent.failures.append(error)
                    continue
                sent.answered += 1
                queue.answered(i, uuid, clock.now_ms())
        stopped = False
    finally:
        endpoint.close()
        _give_back_unsent(batch, done, stopped)
    progress.done()
    return sent


def replay_exhausted(fields: dict[str, Any], posted: int, late: str) -> Outcome:
    """The outcome of a run that found every row of the replayed data set sent by earlier runs."""
    return Outcome(
        REPLAY_EXHAUSTED,
        f"the replayed data set is exhausted: all {fields['replay_rows']} rows were sent by earlier runs, nothing "
        f"was sent; posted {posted} delayed labels{late}",
        "the rehearsal is over: pause the head job's schedule (the windows it leaves are judged on no new "
        "traffic), or point data.replay at new data with a new state store",
        fields,
    )


def simulate_traffic(ctx: Context) -> Outcome:
    """One traffic cycle against the live deployment: synthetic, or the next rows of ``data.replay``.

    Returns:
        Outcome with predictions sent, labels posted and the drift level (or replay position).

    Raises:
        PlatformError: more than 5% of requests failed after retries; or due labels could not be
            posted because the metrics store failed (they stay queued; ``labels_not_posted=N``).
        DataError: as PlatformError, when every failure was a malformed answer (no JSON, no uuid);
            a replayed data set that does not match the spec or changed since the replay started.
        ConfigError: the synthetic scenario for a model spec that is not its own.
    """
    cfg, clock = ctx.cfg, ctx.platform.clock
    now = clock.now_ms()
    model = ctx.require_model()
    live = ctx.require_live(model)
    label_key = cfg.windows.label_key
    recovered = recover_intents(ctx)
    before = post_due_labels(ctx, now, label_key)
    batch = _synthetic(ctx, model, now) if cfg.data.replay is None else _replay(ctx, model, now)
    sent = _send(ctx, model, live, batch)
    after = post_due_labels(ctx, clock.now_ms(), label_key)
    waiting = ctx.store.label_queue.waiting(clock.now_ms(), limit=MAX_REPORTED_WAITING)
    posted = before.posted + after.posted
    # labels the store failed to take are a failed write, unless the second round posted them after all
    post_failure = (after.first_failure or before.first_failure) if waiting else None

    total, failures, skipped = len(batch.requests), sent.failures, sent.skipped
    cycle = {"cycle": batch.fields.pop("cycle")} if "cycle" in batch.fields else {}
    fields = dict(
        model=model.name,
        deployment=live.id,
        version=version_of(live),
        **cycle,
        predictions=sent.answered,
        failed=len(failures),
        not_sent=skipped,
        labels_posted=posted,
        labels_recovered=recovered,
        labels_waiting=waiting,
        **batch.fields,
    )
    not_posted = (
        f"; {waiting} due labels could not be posted (the model metrics store failed: {post_failure}): "
        "they stay queued and the next run posts them"
        if post_failure is not None
        else ""
    )
    if failures:
        log.warning("requests failed after retries %s", KV(failed=len(failures), of=total, first=str(failures[0])))
    if len(failures) > int(MAX_FAILED_SHARE * total):
        kind = DataError if all(isinstance(f, DataError) for f in failures) else PlatformError
        stopped = f", {skipped} not sent (more than {MAX_FAILED_SHARE:.0%} failed)" if skipped else ""
        error = kind(
            f"{len(failures)} of {total} requests to {model.name!r} failed after retries{stopped}; "
            f"{sent.answered} answered and their labels are queued; first failure: {failures[0]}{not_posted}"
        )
        if kind is PlatformError:
            error.action = REQUESTS_FAILED_ACTION
        raise _with_fields(error, fields, post_failure is not None)
    if post_failure is not None:
        error = PlatformError(f"sent {sent.answered} {batch.summary} to {version_of(live)}{not_posted}")
        error.action = LABELS_FAILED_ACTION
        raise _with_fields(error, fields, True)
    late = f"; {waiting} due labels could not be posted and wait for the next run" if waiting else ""
    if fields.get(REPLAY_EXHAUSTED):
        return replay_exhausted(fields, posted, late)
    return Outcome(
        "ok",
        f"sent {sent.answered} {batch.summary} to {version_of(live)}, posted {posted} delayed labels{late}",
        "none",
        fields,
    )


def _with_fields(error: PlatformError | DataError, fields: dict[str, Any], labels_failed: bool) -> MonitoringError:
    """The failed run's VERDICT carries the run's counts (and ``labels_not_posted`` when posts failed)."""
    error.verdict_fields.update({k: v for k, v in fields.items() if k not in ("model", "deployment", "version")})
    if labels_failed:
        error.verdict_fields["labels_not_posted"] = fields["labels_waiting"]
    return error
