"""Where the ground-truth job reads: files not read before (empty and unreadable ones set aside), or SQL
from the watermark less the lateness allowance, the watermark bound in the form the time column holds."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cmlbase.clock import iso_exact
from monitoring.config.data import FileSource, SparkSource, SqlSource
from monitoring.config.ground_truth import GroundTruthConfig
from monitoring.core.durations import to_ms
from monitoring.core.errors import ConfigError
from monitoring.core.logs import KV
from monitoring.domain.data.sources import describe_source
from monitoring.domain.data.sources.chunks import Chunk, FileMark, file_chunks, sql_chunks
from monitoring.domain.data.sources.tables import sql_url
from monitoring.state.ground_truth_ledger import READ, GroundTruthLedger
from monitoring.workflows.context import Context

log = logging.getLogger(__name__)

SOURCE_NAME = "ground_truth.source"
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def needed_columns(gt: GroundTruthConfig, label_column: str) -> dict[str, str]:
    """The columns every file or query result must have -> what each holds."""
    return {gt.key_col: "key", label_column: "label", str(gt.source.time_column): "event time"}


def watermark_bound(form: str, ms: int, dialect: str) -> Any:
    """``:watermark`` for a query: the time ``ms`` to the millisecond, in ``form`` (``watermark_param``).

    ``timestamp`` is an aware datetime the driver binds as its own timestamp type; SQLite has no such
    type (and Python's default adapter for it is deprecated), so there it is SQLite's own text form.
    """
    if form == "epoch_ms":
        return int(ms)
    if form == "epoch_s":
        return int(ms) / 1000
    at = _EPOCH + timedelta(milliseconds=int(ms))
    if form == "timestamp" and dialect != "sqlite":
        return at
    if form in ("sql_text", "timestamp"):
        return at.strftime("%Y-%m-%d %H:%M:%S.") + f"{at.microsecond // 1000:03d}"
    return iso_exact(ms)


def form_problem(form: str, dialect: str, sample: Any) -> str | None:
    """Why text times like ``sample`` do not compare with the bound form (text compares character by
    character: ``2026-01-02 03:00`` sorts before ``2026-01-02T02:00``), or None when they do."""
    if not isinstance(sample, str) or len(sample) < 11 or sample[10] not in "T ":
        return None
    text_form = "sql_text" if form == "sql_text" or (form == "timestamp" and dialect == "sqlite") else form
    if text_form == "iso" and sample[10] == " ":
        return f"the time column holds text like {sample!r}; set ground_truth.watermark_param: sql_text"
    if text_form == "sql_text" and sample[10] == "T":
        return f"the time column holds text like {sample!r}; set ground_truth.watermark_param: iso"
    return None


@dataclass
class Files:
    """What a run did with the source's files.

    Attributes:
        read: files read completely this run.
        empty: 0-byte files (not read; read once they have content).
        quarantined: files set aside this run, with why (recorded: left alone until they change).
        held: files quarantined by an earlier run and unchanged since, with why.
    """

    read: list[FileMark] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    held: list[tuple[str, str]] = field(default_factory=list)

    def note(self, chunk: Chunk, ledger: GroundTruthLedger, needs: str, now: int) -> None:
        """Record what the chunk says about its file (read completely, quarantined, empty)."""
        mark = chunk.finished
        if chunk.empty is not None:
            self.empty.append(chunk.empty)
            log.warning("an empty export file is left until it has content %s", KV(file=chunk.empty))
        elif chunk.quarantined is not None and mark is not None:
            ledger.quarantine(mark.path, mark.size, mark.mtime_ns, chunk.quarantined, needs, now)
            self.quarantined.append((mark.path, chunk.quarantined))
            log.warning("file quarantined, the feed goes on %s", KV(file=mark.path, reason=chunk.quarantined))
        elif mark is not None:
            ledger.mark_files_read([(mark.path, mark.size, mark.mtime_ns)], now)
            self.read.append(mark)

    @property
    def set_aside(self) -> list[tuple[str, str]]:
        """Every file quarantined now, this run's first."""
        return self.quarantined + self.held


@dataclass
class Reading:
    """The source's new rows for one run, and what they were read from.

    Attributes:
        chunks: the rows, a chunk at a time.
        files: the files' fate (a file source).
        bound: the query's ``:watermark`` as bound (SQL), for the report.
        dialect: the SQL database's dialect (``sqlite``, ``postgresql``), or "".
    """

    chunks: Iterator[Chunk]
    files: Files
    bound: Any = None
    dialect: str = ""


def open_source(ctx: Context, ledger: GroundTruthLedger, watermark: int | None, needs: dict[str, str]) -> Reading:
    """The source's rows this run has to read: files not read (nor quarantined) as they are now, or the
    query from the watermark less ``lateness``."""
    gt = ctx.cfg.ground_truth
    name = describe_source(gt.source, SOURCE_NAME)
    files = Files()
    wanted = needs_text(needs)
    if isinstance(gt.source, FileSource):

        def skip(mark: FileMark) -> bool:
            state = ledger.file_state(mark.path, mark.size, mark.mtime_ns, wanted)
            if state is not None and state != READ:
                files.held.append((mark.path, state))
            return state is not None

        return Reading(file_chunks(gt.source, ctx.project_root, name, gt.chunk_rows, skip, needs), files)
    dialect = "spark" if isinstance(gt.source, SparkSource) else sql_dialect(ctx, gt.source)
    since = max(0, (watermark or 0) - to_ms(gt.lateness)) if watermark is not None else 0
    bound = watermark_bound(gt.watermark_param, since, dialect)
    if isinstance(gt.source, SparkSource):
        from monitoring.domain.data.sources.spark_tables import spark_chunks

        return Reading(spark_chunks(gt.source, name, SOURCE_NAME, gt.chunk_rows, bound), files, bound, dialect)
    chunks = sql_chunks(gt.source, ctx.project_root, name, gt.chunk_rows, {"watermark": bound})
    return Reading(chunks, files, bound, dialect)


def needs_text(needs: dict[str, str]) -> str:
    """The columns a file was checked for, as recorded with a quarantine (another config checks again)."""
    return ",".join(needs)


def sql_dialect(ctx: Context, source: SqlSource) -> str:
    """The SQL source's dialect from its URL (``sqlite``, ``postgresql``); "" when the URL is not usable
    (the query then fails with the error that names it)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(sql_url(source, ctx.project_root, os.environ)).get_backend_name()
    except (ArgumentError, ValueError, ConfigError):
        return ""
