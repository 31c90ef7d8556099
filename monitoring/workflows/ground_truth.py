"""ground_truth: labels from a business system, joined to logged predictions and posted exactly once.

Each run: settle the intents an earlier run left (claim them, read the record back, post only if
the label is not there), index the predictions that tracked a key within the lookback, then read
the source a chunk at a time (files not read before; a query from the watermark less the lateness
allowance on), join each label to the prediction made before its outcome, record intents, post,
mark done. Labels that cannot be posted, future-dated rows, malformed lines and files that cannot
be read are counted and sampled in a report file; none of them stops the feed.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cmlbase.clock import iso_exact, iso_ms
from monitoring.config.data import FileSource
from monitoring.config.ground_truth import GroundTruthConfig
from monitoring.core.durations import format_duration, to_ms
from monitoring.core.errors import ConfigError, PlatformError
from monitoring.core.logs import KV
from monitoring.domain.data.label_join import PredictionIndex, Tally
from monitoring.domain.data.sources import describe_source
from monitoring.state.ground_truth_ledger import GroundTruthLedger
from monitoring.workflows.context import Context, Outcome, version_of
from monitoring.workflows.ground_truth_posts import RUN_KEY, Poster, StoreFailures, settle_intents
from monitoring.workflows.ground_truth_source import (
    SOURCE_NAME,
    Files,
    Reading,
    form_problem,
    needed_columns,
    needs_text,
    open_source,
)

log = logging.getLogger(__name__)

__all__ = ["RUN_KEY", "build_index", "ground_truth", "write_report"]


def _config(ctx: Context) -> GroundTruthConfig:
    gt = ctx.cfg.ground_truth
    if gt is None:
        raise ConfigError(
            "ground_truth: is not configured: add a ground_truth section (source, key, lookback) "
            "to the config; see docs/production.md"
        )
    return gt


def build_index(ctx: Context, model_name: str, now: int) -> PredictionIndex:
    """Key -> predictions for every deployment of the model, over the lookback (and the stale scan before it)."""
    gt = ctx.cfg.ground_truth
    index = PredictionIndex(gt.key, ctx.cfg.windows.features_key, gt.match)
    start = now - to_ms(gt.lookback)
    stale_start = start - to_ms(gt.stale_span)
    chunk_ms = to_ms(gt.read_chunk)
    deployments = ctx.store.deployments(model_name)
    for i, dep in enumerate(deployments):
        replaced = deployments[i + 1].deployed_ms if i + 1 < len(deployments) else None
        end = now + 1 if replaced is None else min(now + 1, replaced + chunk_ms)
        if end <= stale_start:
            continue
        spans = ((max(stale_start, dep.deployed_ms), min(start, end), True), (max(start, dep.deployed_ms), end, False))
        for lo, hi, stale in spans:
            for _, _, records in (
                ctx.platform.metrics.read_chunks(dep.deployment_crn, lo, hi, chunk_ms) if lo < hi else ()
            ):
                index.add(records, dep.deployment_crn, stale=stale)
    return index


def write_report(ctx: Context, tally: Tally, body: dict[str, Any], now: int) -> str:
    """Write the run's report (counts and samples of every miss) inside the project; returns its relative path."""
    stamp = datetime.fromtimestamp(now / 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run = re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.platform.run_id)[:60]
    rel = Path(ctx.cfg.ground_truth.report_dir) / f"ground-truth-{stamp}-{run}.json"
    path = ctx.project_root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**body, **tally.report()}, indent=2, default=str) + "\n", encoding="utf-8")
    return rel.as_posix()


@dataclass
class Run:
    """One run's reading: what the poster, the files and the watermark came to."""

    poster: Poster
    files: Files
    reading: Reading
    before: int | None
    after: int | None
    form: str | None = None


def _read(ctx: Context, ledger: GroundTruthLedger, poster: Poster, failures: StoreFailures, now: int) -> Run:
    """Read the source's new rows a chunk at a time, join and post them; advance the watermark."""
    gt = ctx.cfg.ground_truth
    before = ledger.watermark()
    needs = needed_columns(gt, poster.label_col)
    name = describe_source(gt.source, SOURCE_NAME)
    reading = open_source(ctx, ledger, before, needs)
    run = Run(poster, reading.files, reading, before, before)
    for chunk in [] if failures.count else reading.chunks:
        poster.take(chunk, name)
        if run.form is None and poster.sql and not chunk.frame.empty:
            sample = chunk.frame[gt.source.time_column].iloc[0]
            run.form = form_problem(gt.watermark_param, reading.dialect, sample) or ""
            if run.form:
                log.warning("the watermark is bound in another text form than the time column's %s", KV(why=run.form))
        reading.files.note(chunk, ledger, needs_text(needs), now)
        if failures.count:  # the store fails: read no more (the rest waits at the source for the next run)
            break
    if poster.latest is not None:
        run.after = ledger.advance_watermark(poster.latest, now)
    if poster.sql and run.after is not None:
        ledger.forget_rows(run.after - to_ms(gt.lateness))
    return run


def ground_truth(ctx: Context) -> Outcome:
    """Read new labels, join them to predictions, post each exactly once, report the rest.

    Returns:
        Outcome with labels read, posted and missed (by kind), files set aside, the watermark and
        the report's path.

    Raises:
        ConfigError: no ``ground_truth`` section, or an SQL URL variable unset.
        DataError: the query fails or its result lacks the key, label or event time column.
        PlatformError: the metrics store failed posts (after retries): they stay recorded as intents,
            reading stopped at that chunk, and the VERDICT keeps the run's counts.
    """
    gt = _config(ctx)
    now = ctx.platform.clock.now_ms()
    model, live = ctx.live_recorded()
    ledger = GroundTruthLedger(ctx.store.db, model.name)
    tally = Tally(gt.samples)
    failures = StoreFailures()
    settle_intents(ctx, ledger, tally, ctx.platform.run_id, now, failures)
    index = build_index(ctx, model.name, now)
    sql = not isinstance(gt.source, FileSource)
    poster = Poster(ctx, ledger, index, tally, failures, now=now, before=ledger.watermark(), sql=sql)
    run = _read(ctx, ledger, poster, failures, now)
    counts = {k: tally.counts.get(k, 0) for k in ("posted", "not_posted", *tally.report()["misses"])}
    files = run.files
    fields = dict(
        model=model.name,
        deployment=live.id,
        version=version_of(live),
        rows=poster.rows,
        files=None if sql else len(files.read),
        predictions_indexed=index.predictions,
        **counts,
        reread=tally.counts.get("reread", 0) or None,
        late=tally.counts.get("late", 0) or None,
        reposted=tally.counts.get("settled_reposted", 0),
        intents_waiting=tally.counts.get("intents_waiting", 0) or None,
        quarantined=len(files.set_aside) or None,
        empty_files=len(files.empty) or None,
        watermark=iso_ms(run.after) if run.after is not None else None,
        watermark_form="mismatch" if run.form else None,
    )
    body = dict(
        model=model.name,
        run=ctx.platform.run_id,
        time=iso_ms(now),
        source=describe_source(gt.source, SOURCE_NAME),
        key=gt.key,
        lookback=str(gt.lookback),
        watermark_before=iso_exact(run.before) if run.before is not None else None,
        watermark_after=iso_exact(run.after) if run.after is not None else None,
        watermark_bound=str(run.reading.bound) if sql else None,
        watermark_form=run.form or None,
        rows=poster.rows,
        files=[f.path for f in files.read],
        empty_files=files.empty,
        quarantined=[{"file": f, "reason": why} for f, why in files.set_aside],
    )
    fields["report"] = write_report(ctx, tally, body, now)
    summary, action = _verdict(gt, tally, counts, run, str(fields["report"]), ledger)
    log.info("ground truth joined %s", KV(rows=poster.rows, posted=counts["posted"], missed=tally.missed()))
    fields = {k: v for k, v in fields.items() if v is not None}
    if failures.count:
        raise _store_failed(failures, summary, fields)
    return Outcome("ok", summary, action, fields)


def _verdict(
    gt: GroundTruthConfig, tally: Tally, counts: dict[str, int], run: Run, report: str, ledger: GroundTruthLedger
) -> tuple[str, str]:
    """The run's summary and what a person should do, the most urgent first."""
    rows, missed, files = run.poster.rows, tally.missed(), run.files
    summary = f"read {rows} label rows, posted {counts['posted']}"
    if missed:
        kinds = ", ".join(f"{k} {v}" for k, v in counts.items() if v and k not in ("posted", "not_posted"))
        summary += f", {missed} not posted ({kinds})"
    if files.set_aside:
        summary += f"; {len(files.set_aside)} files quarantined"
    unmatched = tally.counts.get("unknown_key", 0) + tally.counts.get("too_old", 0)
    future = counts.get("future_dated", 0)
    if counts["not_posted"]:
        return (
            summary,
            f"{counts['not_posted']} posts failed after retries: the next run posts them (they are recorded)",
        )
    if files.set_aside:
        first, why = files.set_aside[0]
        more = f" (and {len(files.set_aside) - 1} more, see {report})" if len(files.set_aside) > 1 else ""
        return summary, f"fix or re-export {first}: it {why}{more}; the other files were read"
    if future:
        return summary, (
            f"{future} rows are dated more than {format_duration(gt.future_tolerance)} after this run: quarantined, "
            "not posted; "
            f"fix their time at the source (samples in {report})"
        )
    if run.form:
        return summary, f"{run.form}: rows may be skipped (see docs/production.md, the watermark)"
    if unmatched and unmatched == rows:
        return summary, (
            f"no label matched a prediction: is ground_truth.key ({gt.key!r}) what the predict function "
            f"tracks? see {report}"
        )
    if missed:
        return summary, f"read {report} for samples of the labels not posted"
    if files.empty:
        return summary, f"{files.empty[0]} is empty (0 bytes): it is read once the export has written it"
    if isinstance(gt.source, FileSource) and not rows and not ledger.files_read():
        return summary, f"no file matches {gt.source.path!r} yet: check that the export lands there"
    return summary, "none"


def _store_failed(failures: StoreFailures, summary: str, fields: dict[str, Any]) -> PlatformError:
    """A run whose posts the metrics store failed never reports success for them (its VERDICT keeps the counts)."""
    error = PlatformError(
        f"{summary}; {failures.count} label posts failed: the model metrics store failed ({failures.first}); "
        "they are recorded and the next run posts them"
    )
    error.action = (
        "check the model metrics store the line names (out of space, unreachable), then re-run: nothing was lost"
    )
    error.verdict_fields.update({k: v for k, v in fields.items() if k not in ("model", "deployment", "version")})
    return error
