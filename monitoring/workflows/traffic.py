"""simulate_traffic: post due ground truth, send a cycle of synthetic requests, queue their labels."""

from __future__ import annotations

import itertools
import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError, MonitoringError, PlatformError
from monitoring.core.logs import KV
from monitoring.core.progress import Progress
from monitoring.domain.data import TelcoScenario, drift_level_at
from monitoring.workflows.context import Context, Outcome, version_of
from monitoring.workflows.labels import RunLabels, confirm_in_doubt, recover_intents

log = logging.getLogger(__name__)

#: More than this share of failed requests fails the run (after per-request retries).
MAX_FAILED_SHARE = 0.05
#: Due labels still waiting after a run are counted up to this many for the verdict.
MAX_REPORTED_WAITING = 100_000


def post_due_labels(ctx: Context, now_ms: int, label_key: str) -> int:
    """Post every label whose delay has passed; mark each posted exactly once. Returns the count.

    Labels whose post started in a run that died are checked against their records first.
    """
    posted_total = confirm_in_doubt(ctx, now_ms)  # a post cut short is checked before it is repeated
    while True:
        due = ctx.store.due_labels(now_ms, limit=5000)
        if not due:
            return posted_total
        ctx.store.label_queue.mark_posting([u for u, _ in due], now_ms)
        posted = ctx.platform.metrics.post_ground_truth([(u, {label_key: int(y)}) for u, y in due])
        ctx.store.mark_labels_posted(posted, now_ms)
        posted_total += len(posted)
        if len(posted) < len(due):
            log.warning("some labels were not posted and stay pending %s", KV(pending=len(due) - len(posted)))
            return posted_total


def simulate_traffic(ctx: Context) -> Outcome:
    """One traffic cycle against the live deployment.

    Returns:
        Outcome with predictions sent, labels posted and the drift level.

    Every request that got an answer has its label queued (exactly once, by uuid) before this
    returns or raises; a request without an answer gets none (its prediction may still be recorded).

    Raises:
        PlatformError: more than 5% of requests failed after retries.
        DataError: as PlatformError, when every failure was a malformed answer (no JSON, no uuid).
    """
    cfg, clock = ctx.cfg, ctx.platform.clock
    now = clock.now_ms()
    model = ctx.require_model()
    live = ctx.require_live(model)
    # Cycles are aligned to multiples of scenario.cycle, so a run a few seconds early or late
    # (cron jitter) still lands in its own cycle; the epoch is the first cycle's start.
    cycle_ms = max(1, to_ms(cfg.scenario.cycle))
    epoch = ctx.store.set_scenario_epoch_if_absent(model.name, now - now % cycle_ms)
    cycle = (now - epoch) // cycle_ms
    level = drift_level_at(now, epoch, to_ms(cfg.scenario.drift.start_after))
    label_key = cfg.windows.label_key

    recovered = recover_intents(ctx)
    posted_before = post_due_labels(ctx, now, label_key)
    scenario = TelcoScenario.from_config(cfg)
    frame = scenario.generate(cfg.scenario.rows_per_cycle, ctx.rng(now // cycle_ms, 1), drift_level=level)
    features = frame[list(cfg.model.feature_names)].to_numpy(dtype=float)
    labels = frame[cfg.model.label.name].to_numpy()
    names = list(cfg.model.feature_names)
    endpoint = ctx.platform.endpoint(model, cfg.scenario.request_timeout.total_seconds())
    delay_ms = to_ms(cfg.scenario.label_delay)

    allowed = int(MAX_FAILED_SHARE * len(frame))
    gave_up = threading.Event()
    failed = itertools.count(1)

    def score(i: int) -> tuple[int, str | None, MonitoringError | None]:
        if gave_up.is_set():  # the cycle has failed already: stop hammering a failing endpoint
            return i, None, None
        try:
            _, uuid = endpoint.predict(requests[i])
            return i, uuid, None
        except MonitoringError as exc:
            if next(failed) > allowed:
                gave_up.set()
            return i, None, exc

    sent, failures, skipped = 0, [], 0
    progress = Progress("predictions", total=len(frame))
    requests = [{n: float(v) for n, v in zip(names, row)} for row in features]
    try:  # each label is durable (an intent) before its request leaves, queued as its answer arrives
        with (
            RunLabels(ctx, live.crn, requests, [int(y) for y in labels], delay_ms) as queue,
            ThreadPoolExecutor(max_workers=cfg.scenario.concurrency) as pool,
        ):
            for i, uuid, error in pool.map(score, range(len(frame))):
                progress.advance()
                if uuid is None:
                    if error is None:
                        skipped += 1
                    else:
                        failures.append(error)
                    continue
                sent += 1
                queue.answered(i, uuid, clock.now_ms())
    finally:
        endpoint.close()
    progress.done()
    posted_now = post_due_labels(ctx, clock.now_ms(), label_key)
    waiting = ctx.store.label_queue.waiting(clock.now_ms(), limit=MAX_REPORTED_WAITING)

    fields = dict(
        model=model.name,
        deployment=live.id,
        version=version_of(live),
        cycle=cycle,
        predictions=sent,
        failed=len(failures),
        not_sent=skipped,
        labels_posted=posted_before + posted_now,
        labels_recovered=recovered,
        labels_waiting=waiting,
        drift_level=round(float(level), 2),
        positives=int(np.sum(labels)),
    )
    if failures:
        log.warning("requests failed after retries %s", KV(failed=len(failures), of=len(frame), first=str(failures[0])))
    if len(failures) > allowed:
        kind = DataError if all(isinstance(f, DataError) for f in failures) else PlatformError
        stopped = f", {skipped} not sent (more than {MAX_FAILED_SHARE:.0%} failed)" if skipped else ""
        raise kind(
            f"{len(failures)} of {len(frame)} requests to {model.name!r} failed after retries{stopped}; "
            f"{sent} answered and their labels are queued; first failure: {failures[0]}"
        )
    late = f"; {waiting} due labels could not be posted and wait for the next run" if waiting else ""
    return Outcome(
        "ok",
        f"sent {sent} predictions to {version_of(live)}, posted {posted_before + posted_now} delayed labels{late}",
        "none",
        fields,
    )
