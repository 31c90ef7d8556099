"""ground_truth: labels from a business system, joined to logged predictions and posted exactly once.

Each run: settle the intents an earlier run left (read the record back, post only if the label is
not there), index the keys the predict function tracked within the lookback, then read the source
a chunk at a time (files not read before; a query from the watermark on), join, record intents,
post, mark done. Labels that cannot be posted are counted and sampled in a report file.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from monitoring.core.clock import iso_exact, iso_ms
from monitoring.core.data_config import FileSource
from monitoring.core.durations import to_ms
from monitoring.core.errors import ConfigError, DataError, PlatformError
from monitoring.core.ground_truth_config import GroundTruthConfig
from monitoring.core.logs import KV
from monitoring.domain.label_join import Hit, PredictionIndex, Tally, label_reader
from monitoring.domain.sources import describe_source
from monitoring.domain.sources.chunks import Chunk, FileMark, file_chunks, sql_chunks
from monitoring.domain.sources.schema import event_times, text_of
from monitoring.state.ground_truth_ledger import INTENT, Entry, GroundTruthLedger
from monitoring.workflows.context import Context, Outcome, version_of

log = logging.getLogger(__name__)

#: Posted with each label: the run that posted it (read back to settle an unfinished intent).
RUN_KEY = "ground_truth_run"
#: Unfinished intents settled per run (more wait for the next run).
SETTLE_LIMIT = 50_000
SOURCE_NAME = "ground_truth.source"


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


def _config(ctx: Context) -> GroundTruthConfig:
    gt = ctx.cfg.ground_truth
    if gt is None:
        raise ConfigError(
            "ground_truth: is not configured: add a ground_truth section (source, key, lookback) "
            "to the config; see docs/production.md"
        )
    return gt


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


def build_index(ctx: Context, model_name: str, now: int) -> PredictionIndex:
    """Key -> prediction for every deployment of the model, over the lookback (and the stale scan before it)."""
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


def _watermark_param(gt: GroundTruthConfig, watermark: int | None) -> Any:
    ms = watermark if watermark is not None else 0
    return ms if gt.watermark_param == "epoch_ms" else iso_ms(ms)


def source_chunks(ctx: Context, ledger: GroundTruthLedger, watermark: int | None) -> Iterator[Chunk]:
    """The source's new rows, one chunk at a time."""
    gt = ctx.cfg.ground_truth
    name = describe_source(gt.source, SOURCE_NAME)
    if isinstance(gt.source, FileSource):
        seen = lambda mark: ledger.file_read(mark.path, mark.size, mark.mtime_ns)  # noqa: E731
        return file_chunks(gt.source, ctx.project_root, name, gt.chunk_rows, seen)
    return sql_chunks(gt.source, ctx.project_root, name, gt.chunk_rows, {"watermark": _watermark_param(gt, watermark)})


class Poster:
    """Joins chunks of labels to predictions and posts each prediction's label exactly once."""

    def __init__(
        self,
        ctx: Context,
        ledger: GroundTruthLedger,
        index: PredictionIndex,
        tally: Tally,
        run: str,
        failures: StoreFailures,
    ):
        self.ctx, self.ledger, self.index, self.tally, self.run = ctx, ledger, index, tally, run
        self.failures = failures
        gt = ctx.cfg.ground_truth
        self.gt = gt
        self.label_col = gt.label_column or ctx.cfg.model.label.name
        self.read_label = label_reader(ctx.cfg.model)
        self.latest: int | None = None
        self.rows = 0

    def _columns(self, chunk: Chunk) -> None:
        needed = {"key": self.gt.key_col, "label": self.label_col, "event time": self.gt.source.time_column}
        missing = [f"{col!r} ({what})" for what, col in needed.items() if col not in chunk.frame.columns]
        if missing:
            where = chunk.locate(0).split(" of ", 1)[-1]
            raise DataError(
                f"{describe_source(self.gt.source, SOURCE_NAME)}: {where} has no column {', '.join(missing)}; "
                f"it has {list(chunk.frame.columns)[:20]}"
            )

    def take(self, chunk: Chunk) -> None:
        """Join one chunk, record the intents, post, mark done."""
        frame = chunk.frame
        if frame.empty:
            return
        self._columns(chunk)
        self.rows += len(frame)
        src = self.gt.source
        times, bad_time = event_times(frame[src.time_column], src.time_format)
        if (~bad_time).any():
            newest = int(times[~bad_time].max())
            self.latest = newest if self.latest is None else max(self.latest, newest)
        rows = []
        for i, (raw_key, raw_label) in enumerate(zip(frame[self.gt.key_col].tolist(), frame[self.label_col].tolist())):
            row = self._row(chunk.locate(i), raw_key, raw_label, None if bad_time[i] else int(times[i]))
            if row is not None:
                rows.append(row)
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
        self._post(fresh)

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


def write_report(ctx: Context, tally: Tally, body: dict[str, Any], now: int) -> str:
    """Write the run's report (counts and samples of every miss) inside the project; returns its relative path."""
    stamp = datetime.fromtimestamp(now / 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run = re.sub(r"[^A-Za-z0-9_.-]", "_", ctx.platform.run_id)[:60]
    rel = Path(ctx.cfg.ground_truth.report_dir) / f"ground-truth-{stamp}-{run}.json"
    path = ctx.project_root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**body, **tally.report()}, indent=2, default=str) + "\n", encoding="utf-8")
    return rel.as_posix()


def ground_truth(ctx: Context) -> Outcome:
    """Read new labels, join them to predictions, post each exactly once, report the rest.

    Returns:
        Outcome with labels read, posted and missed (by kind), the watermark and the report's path.

    Raises:
        ConfigError: no ``ground_truth`` section, or an SQL URL variable unset.
        DataError: the source cannot be read or lacks the key, label or event time column.
        PlatformError: the metrics store failed posts (after retries): they stay recorded as intents,
            reading stopped at that chunk, and the VERDICT keeps the run's counts.
    """
    gt = _config(ctx)
    now = ctx.platform.clock.now_ms()
    model, live = ctx.live_recorded()
    run = ctx.platform.run_id
    ledger = GroundTruthLedger(ctx.store.db, model.name)
    tally = Tally(gt.samples)
    failures = StoreFailures()
    settle_intents(ctx, ledger, tally, run, now, failures)
    index = build_index(ctx, model.name, now)
    before = ledger.watermark()
    poster = Poster(ctx, ledger, index, tally, run, failures)
    files: list[FileMark] = []
    for chunk in [] if failures.count else source_chunks(ctx, ledger, before):
        poster.take(chunk)
        if chunk.finished is not None:
            ledger.mark_files_read([(chunk.finished.path, chunk.finished.size, chunk.finished.mtime_ns)], now)
            files.append(chunk.finished)
        if failures.count:  # the store fails: read no more (the rest waits at the source for the next run)
            break
    after = ledger.advance_watermark(poster.latest, now) if poster.latest is not None else before
    counts = {k: tally.counts.get(k, 0) for k in ("posted", "not_posted", *tally.report()["misses"])}
    fields = dict(
        model=model.name,
        deployment=live.id,
        version=version_of(live),
        rows=poster.rows,
        files=len(files) if isinstance(gt.source, FileSource) else None,
        predictions_indexed=index.predictions,
        **counts,
        reposted=tally.counts.get("settled_reposted", 0),
        intents_waiting=tally.counts.get("intents_waiting", 0) or None,
        watermark=iso_ms(after) if after is not None else None,
    )
    body = dict(
        model=model.name,
        run=run,
        time=iso_ms(now),
        source=describe_source(gt.source, SOURCE_NAME),
        key=gt.key,
        lookback=str(gt.lookback),
        watermark_before=iso_ms(before) if before is not None else None,
        watermark_after=fields["watermark"],
        rows=poster.rows,
        files=[f.path for f in files],
    )
    fields["report"] = write_report(ctx, tally, body, now)
    missed = tally.missed()
    summary = f"read {poster.rows} label rows, posted {counts['posted']}"
    if missed:
        summary += f", {missed} not posted ({', '.join(f'{k} {v}' for k, v in counts.items() if v and k not in ('posted', 'not_posted'))})"
    unmatched = tally.counts.get("unknown_key", 0) + tally.counts.get("too_old", 0)
    action = "none"
    if counts["not_posted"]:
        action = f"{counts['not_posted']} posts failed after retries: the next run posts them (they are recorded)"
    elif unmatched and unmatched == poster.rows:
        action = (
            f"no label matched a prediction: is ground_truth.key ({gt.key!r}) what the predict function "
            f"tracks? see {fields['report']}"
        )
    elif missed:
        action = f"read {fields['report']} for samples of the labels not posted"
    elif isinstance(gt.source, FileSource) and not poster.rows and not ledger.files_read():
        action = f"no file matches {gt.source.path!r} yet: check that the export lands there"
    log.info("ground truth joined %s", KV(rows=poster.rows, posted=counts["posted"], missed=missed))
    fields = {k: v for k, v in fields.items() if v is not None}
    if failures.count:
        raise _store_failed(failures, summary, fields)
    return Outcome("ok", summary, action, fields)


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
