"""What a run reads of the metrics store: each deployment's span, from its watermark (and its labels not
read yet) to now, and that span's complete windows computed.

compute_accuracy reads its spans here on every run; ``state rebuild`` recomputes every window with
the same code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError
from monitoring.core.logs import KV
from monitoring.domain.training.artifacts import load_artifact
from monitoring.domain.windows.compute import compute_windows
from monitoring.domain.windows.headline import bound_requests
from monitoring.domain.windows.results import WindowMetrics, window_start
from monitoring.state.store import DeploymentRow
from monitoring.workflows.context import Context
from monitoring.workflows.references import VersionReferences

log = logging.getLogger(__name__)

#: A label's answer time is after its record's start by the request's duration (and two clocks).
LABEL_SLACK_MS = 60_000


@dataclass
class Span:
    """The part of one deployment's history a run must (re)read."""

    deployment: DeploymentRow
    start_ms: int
    end_ms: int
    previous_watermark: int | None


def spans_to_read(ctx: Context, deployments: list[DeploymentRow], now: int) -> list[Span]:
    """For each deployment: from its watermark minus the label horizon (or its start) to now.

    A replaced deployment is read to now too, not to its successor's start: it answers until
    its successor is healthy, and a successor discovered later counts from its creation (its
    records are read by their own deployment CRN, so nothing of the successor is mixed in). It
    is read until a label horizon has passed since its successor started.
    """
    window = ctx.cfg.windows.length_ms
    horizon = to_ms(ctx.cfg.windows.label_horizon)
    spans = []
    for i, dep in enumerate(deployments):
        replaced = deployments[i + 1].deployed_ms if i + 1 < len(deployments) else None
        watermark = ctx.store.watermark(dep.deployment_crn)
        # labels still queued, or posted since the last read, reopen their windows whatever their age
        unread = ctx.store.label_queue.earliest_unread(dep.deployment_crn, watermark)
        if replaced is not None and watermark is not None and watermark - horizon >= replaced and unread is None:
            continue  # settled: no label for it can still arrive
        start = dep.deployed_ms if watermark is None else max(dep.deployed_ms, watermark - horizon)
        if unread is not None:
            start = max(dep.deployed_ms, min(start, unread - LABEL_SLACK_MS))
        spans.append(Span(dep, window_start(start, window), now, watermark))
    return spans


def reference_for(ctx: Context, dep: DeploymentRow) -> VersionReferences:
    """The version's training reference (drift), estimation model, slices and joint-drift sample, those it has."""
    try:
        metadata = load_artifact(ctx.artifacts_dir / dep.model / dep.version).metadata
    except DataError as exc:
        log.warning("no training reference, drift not computed %s", KV(version=dep.version, error=str(exc)))
        return VersionReferences()
    return VersionReferences.of(metadata, dep.version, ctx.cfg.slices)


def windows_for_span(ctx: Context, span: Span, now: int) -> list[WindowMetrics]:
    """Complete windows of one span, reading ``windows.chunk`` at a time."""
    cfg = ctx.cfg
    window = cfg.windows.length_ms
    chunk = max(1, to_ms(cfg.windows.chunk) // window) * window
    refs = reference_for(ctx, span.deployment)
    bounds = bound_requests(cfg.thresholds.policies, cfg.model.task)
    results: list[WindowMetrics] = []
    for lo, hi, columns in ctx.read_columns(span.deployment.deployment_crn, span.start_ms, span.end_ms, chunk):
        ignored = {k: v for k, v in columns.counts.items() if k not in ("records", "aggregates") and v}
        if ignored:
            log.warning(
                "records ignored %s", KV(deployment=span.deployment.deployment_crn, start=lo, end=hi, **ignored)
            )
        for result in compute_windows(
            columns,
            window,
            refs.drift,
            bounds=bounds,
            seed=cfg.scenario.seed,
            estimation=refs.estimation,
            slicing=refs.slicing,
            joint=refs.joint,
            quality=True,
        ):
            if result.end_ms <= now and result.deployment_crn == span.deployment.deployment_crn:
                results.append(result)
        log.debug("chunk read %s", KV(start=lo, end=hi, records=columns.counts["records"]))
    return results
