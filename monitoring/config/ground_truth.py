"""The ``ground_truth:`` section of the config: labels from a business system, joined to logged predictions."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitoring.config.data import DatasetSource
from monitoring.core.durations import Duration
from monitoring.core.paths import InsidePath

#: Deployment environment variable: names (comma-separated) of request fields the generic serving
#: function tracks with each prediction, for the ground-truth join (``ground_truth.key``).
TRACK_KEYS_ENV = "CML_MONITOR_TRACK_KEYS"
#: ``key`` meaning "the source's key column holds CML's prediction uuid".
UUID_KEY = "uuid"


class GroundTruthConfig(BaseModel):
    """Where the ground-truth job reads labels and how it finds the prediction each one belongs to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: DatasetSource
    """CSV/Parquet files (a path or glob inside the project) or a SQL query; ``source.time_column`` is
    each label's event time, the job's watermark. A SQL query may use ``:watermark``."""
    key: str = Field(default=UUID_KEY, min_length=1, max_length=200)
    """``uuid`` (the key column holds the prediction uuid) or the name of a value the predict function
    tracked per prediction (``track_metric("customer_id", ...)``, or an input feature of that name)."""
    key_column: str | None = None
    """The source column holding the key (default: ``key``)."""
    label_column: str | None = None
    """The source column holding the label (default: ``model.label.name``)."""
    lookback: Duration = timedelta(days=30)
    """A label joins a prediction made at most this long before the run."""
    stale_scan: Duration | None = None
    """How far before the lookback to look for keys, to tell 'prediction too old' from 'unknown key'
    (default: as long as ``lookback``; ``0s``: never, both count as unknown)."""
    match: Literal["newest", "oldest"] = "newest"
    """Which prediction of a key (predicted more than once within the lookback) gets the label."""
    read_chunk: Duration = timedelta(hours=6)
    """Span of metrics-store records read per ``read_metrics`` call while indexing keys."""
    settle_after: Duration = timedelta(minutes=15)
    """An unfinished intent of an earlier run is read back (and posted if missing) only once this
    long has passed since it was recorded, so that a post still in flight from a killed run lands first."""
    chunk_rows: int = Field(default=5000, ge=1, le=1_000_000)
    """Source rows read, joined and posted at a time (memory is bounded by one chunk)."""
    concurrency: int = Field(default=16, ge=1, le=64)
    """Labels posted in parallel (one ``track_delayed_metrics`` call each; CML's metrics service is
    remote, so a sequential post waits a round trip per label)."""
    watermark_param: Literal["iso", "sql_text", "timestamp", "epoch_ms", "epoch_s"] = "iso"
    """The form a SQL query receives ``:watermark`` in, to the millisecond: ``iso`` text
    (``2026-01-02T03:04:05.250Z``: ISO-8601 UTC text columns, and PostgreSQL timestamp columns, which
    cast it), ``sql_text`` (``2026-01-02 03:04:05.250``: SQLite's ``datetime()`` and
    ``CURRENT_TIMESTAMP`` text), ``timestamp`` (the driver's own timestamp type: PostgreSQL
    ``timestamptz``; SQLite has none and gets ``sql_text``), ``epoch_ms`` or ``epoch_s`` (numbers)."""
    lateness: Duration = timedelta(hours=1)
    """SQL: the query re-reads this span before the watermark, so a row committed late with an older
    time (a long transaction that stamped its start) is still read; rows read before count once
    (``reread``), and the ledger never posts a label twice."""
    future_tolerance: Duration = timedelta(hours=1)
    """Rows dated more than this after the run are quarantined (``future_dated``): never posted and
    never moving the watermark; the watermark never passes the run's own time."""
    report_dir: InsidePath = "ground_truth"
    """Directory (inside the project) of each run's report of unmatched labels."""
    samples: int = Field(default=20, ge=0, le=10_000)
    """Rows of each kind of unmatched label written to the report."""

    @property
    def key_col(self) -> str:
        return self.key_column or self.key

    @property
    def tracked_keys(self) -> tuple[str, ...]:
        """The request fields a predict function must track for the join (none for uuid keys)."""
        return () if self.key == UUID_KEY else (self.key,)

    @property
    def stale_span(self) -> timedelta:
        return self.lookback if self.stale_scan is None else self.stale_scan

    @model_validator(mode="after")
    def _source_rules(self) -> GroundTruthConfig:
        src = self.source
        if self.lookback.total_seconds() <= 0 or self.read_chunk.total_seconds() <= 0:
            raise ValueError("lookback and read_chunk must be positive durations")
        if self.lateness.total_seconds() < 0 or self.future_tolerance.total_seconds() < 0:
            raise ValueError("lateness and future_tolerance must not be negative")
        if not src.time_column:
            raise ValueError("source.time_column: name the column with each label's event time (the watermark)")
        if src.shuffle_seed is not None or src.rows is not None:
            raise ValueError("source: shuffle_seed and rows select training rows; a label feed reads every new row")
        if src.kind in ("sql", "spark") and src.query is not None and ":watermark" not in src.query:
            raise ValueError(
                "source.query: use the :watermark parameter (e.g. WHERE updated_at >= :watermark), "
                "or every run reads the whole table"
            )
        return self
