"""compute_accuracy: incremental window metrics per deployment, from the model metrics store.

Each run reads only what it has not read yet, plus the windows still inside the label horizon
(labels arrive late and merge into earlier records). Reads go chunk by chunk, so memory is
bounded by one chunk, not by the history. A window whose labels are queued but not posted yet
(the metrics store refused them) is read again, whatever its age, until they are posted and read;
its aggregate waits for them. Settled windows are written back to CML with
``track_aggregate_metrics``, at most once each (the state store's aggregates ledger), by one run
at a time (the model's window-results lease). A stored window is never replaced by a reading
with fewer predictions or labels, and a clock that moved back is said in the VERDICT.
"""

from __future__ import annotations

import logging

from cmlbase.clock import iso_ms
from monitoring.config.metric_registry import headline_metric
from monitoring.core.durations import to_ms
from monitoring.core.errors import BusyError, PlatformError
from monitoring.core.logs import KV
from monitoring.domain.decisions.policy_results import fmt_value
from monitoring.domain.windows.headline import policy_metric
from monitoring.domain.windows.results import WindowMetrics, window_start
from monitoring.state.aggregates import HELD, SENT
from monitoring.state.leases import Lease, holder_name
from monitoring.state.store import DeploymentRow
from monitoring.workflows.context import Context, Outcome
from monitoring.workflows.estimation import estimate_fields
from monitoring.workflows.spans import LABEL_SLACK_MS, Span, spans_to_read, windows_for_span

log = logging.getLogger(__name__)


AGGREGATE_FAILED_ACTION = (
    "check the model metrics store the error names (out of space: free space on it; unreachable: the workspace), "
    "then re-run: the windows are stored, and the next run checks whether this aggregate landed before it sends "
    "it (at most once)"
)


def lease_name(model: str) -> str:
    """The lease one run holds while it computes and sends ``model``'s window results."""
    return f"window-results:{model}"


def aggregate_landed(ctx: Context, deployment_crn: str, window: WindowMetrics) -> bool:
    """Whether CML holds this window's aggregate record (read back: only the window's first millisecond)."""
    records = ctx.platform.metrics.read(deployment_crn, window.start_ms, window.start_ms)
    return any(
        isinstance(r, dict) and r.get("predictionUuid") == "" and r.get("endTimeStampMs") == window.end_ms
        for r in records
    )


def track_settled(ctx: Context, span: Span, results: list[WindowMetrics], now: int, lease: Lease) -> int:
    """Send windows that settled since the last run to CML as aggregate metrics, at most once each.

    The ledger holds the intent before the call and ``sent`` after it (at most once: a run killed
    in between leaves ``sending``, and the next run reads the metrics store before it sends again).
    A window with labels still queued (not posted) is ``held``: sent by the run that reads it with them.

    Returns:
        How many aggregates this run sent.
    Raises:
        BusyError: the lease was lost (this run stalled past its expiry); nothing more is sent.
        PlatformError: ``track_aggregate_metrics`` failed after retries (its window stays ``sending``).
    """
    horizon = to_ms(ctx.cfg.windows.label_horizon)
    window = ctx.cfg.windows.length_ms
    crn, run = span.deployment.deployment_crn, ctx.platform.run_id
    ledger = ctx.store.aggregates
    known = ledger.states(crn)
    waiting = {
        window_start(t - slack, window)
        for t in ctx.store.label_queue.unposted_times(crn, span.start_ms)
        for slack in (0, LABEL_SLACK_MS)
    }
    sent = 0
    for r in results:
        settles_at = r.end_ms + horizon
        row = known.get((r.start_ms, r.end_ms))
        if settles_at > now or (row is not None and row.state == SENT):
            continue
        if r.start_ms in waiting and (row is None or row.state == HELD):  # sent once its labels are posted
            if row is None:
                ledger.hold(crn, r.start_ms, r.end_ms, run, now)
                log.warning(
                    "settled window held until its queued labels are posted %s",
                    KV(deployment=crn, window=iso_ms(r.start_ms), labelled=r.labelled, predictions=r.predictions),
                )
            continue
        if row is None and span.previous_watermark is not None and settles_at <= span.previous_watermark:
            continue  # settled before the last run, which sent it (stores older than the ledger)
        if not lease.still_held():
            raise BusyError(f"lost the window-results lease of {span.deployment.model!r} before sending; sent {sent}")
        if row is None:
            if not ledger.intend(crn, r.start_ms, r.end_ms, run, now):
                continue
        elif row.state == HELD:
            if not ledger.release(row, run, now):
                continue
        elif not ledger.take_over(row, run, now):
            continue
        elif aggregate_landed(ctx, crn, r):
            log.info("aggregate of an interrupted run had landed %s", KV(deployment=crn, window=r.start_ms))
            ledger.mark_sent(crn, r.start_ms, r.end_ms, now)
            continue
        metrics = {**r.scores(), "predictions": r.predictions, "labelled": r.labelled}
        try:
            ctx.platform.metrics.track_aggregate(metrics, r.start_ms, r.end_ms, crn)
        except PlatformError as exc:
            exc.action = AGGREGATE_FAILED_ACTION
            exc.verdict_fields["aggregates_tracked"] = sent
            raise
        ledger.mark_sent(crn, r.start_ms, r.end_ms, now)
        sent += 1
    return sent


def keep_fuller(ctx: Context, span: Span, results: list[WindowMetrics]) -> tuple[list[WindowMetrics], int]:
    """Stored windows win over new readings with fewer predictions or labels (records cannot vanish).

    Returns:
        The windows to store and send, and how many stored ones were kept.
    """
    crn = span.deployment.deployment_crn
    stored = {w.start_ms: w for w in ctx.store.windows(deployment_crn=crn, since_ms=span.start_ms)}
    final, kept = [], 0
    for r in results:
        old = stored.get(r.start_ms)
        if (
            old is not None
            and old.end_ms == r.end_ms
            and (r.predictions < old.predictions or r.labelled < old.labelled)
        ):
            log.warning(
                "stored window kept: the new reading has less data %s",
                KV(
                    deployment=old.deployment_crn,
                    window=iso_ms(old.start_ms),
                    stored=old.predictions,
                    stored_labelled=old.labelled,
                    read=r.predictions,
                    read_labelled=r.labelled,
                ),
            )
            final.append(old)
            kept += 1
            continue
        final.append(r)
    return final, kept


def roughly(ms: int) -> str:
    """A span as a person says it: ``4h 18m``, ``18m 3s``, ``12s``."""
    seconds = ms // 1000
    hours, minutes = seconds // 3600, seconds % 3600 // 60
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds % 60}s" if minutes else f"{seconds}s"


def clock_moved_back(ctx: Context, deployments: list[DeploymentRow], now: int) -> int:
    """How far ``now`` lies before the latest watermark (an earlier run's time); 0 when it does not."""
    marks = [ctx.store.watermark(d.deployment_crn) for d in deployments]
    latest = max((m for m in marks if m is not None), default=None)
    return 0 if latest is None or now >= latest else latest - now


def compute_accuracy(ctx: Context) -> Outcome:
    """Compute and store window metrics for every deployment that still has unsettled windows.

    Raises:
        BusyError: another run held the model's window-results lease for all of ``state.busy_timeout``.
    """
    now = ctx.platform.clock.now_ms()
    model, live = ctx.live_recorded()
    computed, tracked, kept = 0, 0, 0
    with ctx.store.leases.hold(
        lease_name(model.name),
        holder_name(ctx.platform.run_id),
        wait_s=ctx.cfg.state.busy_timeout.total_seconds(),
        sleep=ctx.platform.sleep,
        what=f"computing the window results of model {model.name!r}",
    ) as lease:
        deployments = ctx.store.deployments(model.name)
        back = clock_moved_back(ctx, deployments, now)
        for span in spans_to_read(ctx, deployments, now):
            results, kept_here = keep_fuller(ctx, span, windows_for_span(ctx, span, now))
            ctx.store.upsert_windows(results)
            tracked += track_settled(ctx, span, results, now, lease)
            ctx.store.set_watermark(span.deployment.deployment_crn, now)
            computed, kept = computed + len(results), kept + kept_here
    stored = ctx.store.windows(deployment_crn=live.crn)
    labelled = [w for w in stored if w.labelled > 0]
    fields = dict(model=model.name, windows=computed, aggregates_tracked=tracked, windows_kept=kept or None)
    metric = headline_metric(ctx.cfg.model.task, policy_metric(ctx.cfg.thresholds.policies))
    fields.update(estimate_fields(stored, metric))
    note, action = "", "none"
    if back:
        fields["clock_moved_back_s"] = back // 1000
        note = (
            f"the clock moved back {roughly(back)} (now {iso_ms(now)}, an earlier "
            f"run's {iso_ms(now + back)}): settled windows kept, none rewritten with less data; "
        )
        action = "check the engine's clock (NTP) or the workspace clock; nothing to do if it was set back on purpose"
        log.warning("clock moved back %s", KV(now=iso_ms(now), latest_run=iso_ms(now + back)))
    if not labelled:
        return Outcome(
            "ok", f"{note}computed {computed} windows; the live deployment has no labelled window yet", action, fields
        )
    last = labelled[-1]
    value = last.value(metric)
    fields.update(
        {
            "window_start": last.start_ms,
            "metric": metric,
            metric: round(value, 4) if value is not None else None,
            "labelled": last.labelled,
            "predictions": last.predictions,
            "zero_targets": last.zero_targets if metric == "mape" else None,
        }
    )
    shown = f"{metric} {fmt_value(value)}" if value is not None else f"{metric} undefined"
    return Outcome(
        "ok",
        f"{note}computed {computed} windows; latest labelled window of the live deployment: "
        f"{shown} over {last.labelled}/{last.predictions} labelled{last.rows_note(metric)}",
        action,
        fields,
    )
