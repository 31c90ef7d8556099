"""compute_accuracy: incremental window metrics per deployment, from the model metrics store.

Each run reads only what it has not read yet, plus the windows still inside the label horizon
(labels arrive late and merge into earlier records). Reads go chunk by chunk, so memory is
bounded by one chunk, not by the history. Settled windows are written back to CML with
``track_aggregate_metrics``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError
from monitoring.core.logs import KV
from monitoring.domain.drift import ReferenceStats
from monitoring.domain.thresholds import bound_requests, headline_metric
from monitoring.domain.training import load_artifact
from monitoring.domain.window_metrics import WindowMetrics, window_start
from monitoring.domain.windows import compute_windows
from monitoring.state.store import DeploymentRow
from monitoring.workflows.context import Context, Outcome

log = logging.getLogger(__name__)


@dataclass
class Span:
    """The part of one deployment's history a run must (re)read."""

    deployment: DeploymentRow
    start_ms: int
    end_ms: int
    previous_watermark: int | None


def spans_to_read(ctx: Context, deployments: list[DeploymentRow], now: int) -> list[Span]:
    """For each deployment: from its watermark minus the label horizon (or its start) to now or its end."""
    window = to_ms(ctx.cfg.windows.length)
    horizon = to_ms(ctx.cfg.windows.label_horizon)
    spans = []
    for i, dep in enumerate(deployments):
        replaced = deployments[i + 1].deployed_ms if i + 1 < len(deployments) else None
        watermark = ctx.store.watermark(dep.deployment_crn)
        if replaced is not None and watermark is not None and watermark - horizon >= replaced:
            continue  # settled: no label for it can still arrive
        start = dep.deployed_ms if watermark is None else max(dep.deployed_ms, watermark - horizon)
        end = now if replaced is None else min(now, replaced)
        spans.append(Span(dep, window_start(start, window), end, watermark))
    return spans


def reference_for(ctx: Context, dep: DeploymentRow) -> ReferenceStats | None:
    path = ctx.artifacts_dir / dep.model / dep.version
    try:
        return ReferenceStats.from_dict(load_artifact(path).metadata["reference"])
    except (DataError, KeyError) as exc:
        log.warning("no training reference, drift not computed %s", KV(version=dep.version, error=str(exc)))
        return None


def windows_for_span(ctx: Context, span: Span, now: int) -> list[WindowMetrics]:
    """Complete windows of one span, reading ``windows.chunk`` at a time."""
    cfg = ctx.cfg
    window = to_ms(cfg.windows.length)
    chunk = max(1, to_ms(cfg.windows.chunk) // window) * window
    reference = reference_for(ctx, span.deployment)
    bounds = bound_requests(cfg.thresholds.policies, cfg.model.task)
    results: list[WindowMetrics] = []
    for lo, hi, columns in ctx.read_columns(span.deployment.deployment_crn, span.start_ms, span.end_ms, chunk):
        ignored = {k: v for k, v in columns.counts.items() if k not in ("records", "aggregates") and v}
        if ignored:
            log.warning(
                "records ignored %s", KV(deployment=span.deployment.deployment_crn, start=lo, end=hi, **ignored)
            )
        for result in compute_windows(columns, window, reference, bounds=bounds, seed=cfg.scenario.seed):
            if result.end_ms <= now and result.deployment_crn == span.deployment.deployment_crn:
                results.append(result)
        log.debug("chunk read %s", KV(start=lo, end=hi, records=columns.counts["records"]))
    return results


def track_settled(ctx: Context, span: Span, results: list[WindowMetrics], now: int) -> int:
    """Send windows that settled since the last run to CML as aggregate metrics; returns how many."""
    horizon = to_ms(ctx.cfg.windows.label_horizon)
    sent = 0
    for r in results:
        settles_at = r.end_ms + horizon
        if settles_at <= now and (span.previous_watermark is None or settles_at > span.previous_watermark):
            metrics = {**r.scores(), "predictions": r.predictions, "labelled": r.labelled}
            ctx.platform.metrics.track_aggregate(metrics, r.start_ms, r.end_ms, span.deployment.deployment_crn)
            sent += 1
    return sent


def compute_accuracy(ctx: Context) -> Outcome:
    """Compute and store window metrics for every deployment that still has unsettled windows."""
    now = ctx.platform.clock.now_ms()
    model, live = ctx.live_recorded()
    computed, tracked = 0, 0
    for span in spans_to_read(ctx, ctx.store.deployments(model.name), now):
        results = windows_for_span(ctx, span, now)
        ctx.store.upsert_windows(results)
        tracked += track_settled(ctx, span, results, now)
        ctx.store.set_watermark(span.deployment.deployment_crn, now)
        computed += len(results)
    labelled = [w for w in ctx.store.windows(deployment_crn=live.crn) if w.labelled > 0]
    fields = dict(model=model.name, windows=computed, aggregates_tracked=tracked)
    if not labelled:
        return Outcome(
            "ok", f"computed {computed} windows; the live deployment has no labelled window yet", "none", fields
        )
    last = labelled[-1]
    metric = headline_metric(ctx.cfg.thresholds.policies, ctx.cfg.model.task)
    value = last.value(metric)
    fields.update(
        {
            "window_start": last.start_ms,
            "metric": metric,
            metric: round(value, 4) if value is not None else None,
            "labelled": last.labelled,
            "predictions": last.predictions,
        }
    )
    shown = f"{metric} {value:.4g}" if value is not None else f"{metric} undefined"
    return Outcome(
        "ok",
        f"computed {computed} windows; latest labelled window of the live deployment: "
        f"{shown} over {last.labelled}/{last.predictions} labelled",
        "none",
        fields,
    )
