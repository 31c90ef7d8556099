"""The ``data:`` section of the config: where training, retraining and replayed traffic come from."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from monitoring.config.metric_registry import metric_task_problem
from monitoring.core.durations import Duration
from monitoring.core.paths import InsidePath, sqlite_path_inside

_ROWS = re.compile(r"^\s*(\d*)\s*:\s*(\d*)\s*$")
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _utc(value: datetime) -> datetime:
    """A time without a zone is UTC (a data set's dates rarely carry one)."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


def _row_slice(value: str) -> str:
    match = _ROWS.match(value)
    if not match:
        raise ValueError(f"{value!r} is not a row range: expected 'start:end' such as '0:3000' or '3000:'")
    start, end = (int(g) if g else None for g in match.groups())
    if start is not None and end is not None and end <= start:
        raise ValueError(f"{value!r}: the end must be after the start")
    return value


#: A point in time: ``2014-10-31`` or ``2014-10-31T12:00:00Z`` (no zone means UTC).
Instant = Annotated[datetime, AfterValidator(_utc)]


def row_range(value: str) -> tuple[int | None, int | None]:
    """``"0:3000"`` -> ``(0, 3000)``; ``"3000:"`` -> ``(3000, None)`` (a validated ``rows`` value)."""
    match = _ROWS.match(value)
    assert match is not None, value  # validated when the config was read
    start, end = match.groups()
    return (int(start) if start else None, int(end) if end else None)


class _Rows(Strict):
    """Which rows of a data set are used, and the time each row belongs to."""

    time_column: str | None = None
    """Column with each row's time (a date, a timestamp or epoch milliseconds); needed by ``since``/``until``."""
    time_format: str | None = None
    """``strptime`` format of ``time_column`` when it is text that is not ISO-8601 (e.g. ``%d/%m/%Y``)."""
    since: Instant | None = None
    """Only rows at or after this time."""
    until: Instant | None = None
    """Only rows before this time."""
    shuffle_seed: int | None = None
    """Put the rows in a seeded random order first (for data without a time: disjoint ``rows`` slices)."""
    rows: Annotated[str, AfterValidator(_row_slice)] | None = None
    """A slice of the rows after time filter and shuffle, ``"0:3000"`` or ``"3000:"``."""

    @model_validator(mode="after")
    def _time_needed(self) -> _Rows:
        if (self.since or self.until) and not self.time_column:
            raise ValueError("since/until select rows by time: set time_column too")
        if self.since and self.until and self.until <= self.since:
            raise ValueError("until must be after since")
        return self


class FileSource(_Rows):
    """CSV or Parquet files: one path or a glob, inside the project."""

    kind: Literal["csv", "parquet"]
    path: InsidePath = Field(min_length=1)


class SqlSource(_Rows):
    """A SQL query through SQLAlchemy; the URL from an environment variable (or, without a secret, config)."""

    kind: Literal["sql"]
    query: str = Field(min_length=1)
    url_env: str | None = None
    """Environment variable holding the SQLAlchemy URL (use this whenever the URL holds a password)."""
    url: Annotated[str, AfterValidator(sqlite_path_inside)] | None = None
    """The URL itself, for a database without a secret (e.g. ``sqlite:///data/sales.db`` in the project)."""

    @model_validator(mode="after")
    def _one_url(self) -> SqlSource:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("set exactly one of url_env (an environment variable with the URL) and url")
        if self.url and urlsplit(self.url).password:
            raise ValueError("url holds a password: secrets never go in config, put the URL in url_env's variable")
        return self


class SparkSource(_Rows):
    """A Spark SQL query (or a whole table) through a named CML data connection (``cml.data_v1``)."""

    kind: Literal["spark"]
    connection: str = Field(min_length=1, max_length=200)
    """The data connection's name (CML: one the workspace defines; locally ``local-spark`` by default)."""
    query: str | None = None
    """Spark SQL (``SELECT ... FROM db.table``); a ground-truth query may use ``:watermark``."""
    table: str | None = None
    """A table to read whole (``db.table``), instead of ``query``."""

    @model_validator(mode="after")
    def _one_of(self) -> SparkSource:
        if (self.query is None) == (self.table is None) or (self.query is not None and not self.query.strip()):
            raise ValueError("set exactly one of query (Spark SQL) and table (db.table)")
        if self.table is not None and not _TABLE.match(self.table):
            raise ValueError(f"table {self.table!r}: expected a table name, db.table or catalog.db.table")
        return self


class SyntheticSource(Strict):
    """The built-in telco cell-tower scenario (``scenario:``), drift-free, for its own feature names only."""

    kind: Literal["synthetic"]
    rows: int | None = Field(default=None, ge=50)
    """Rows to draw (default ``scenario.training_rows``)."""


class MetricsStoreSource(Strict):
    """Inputs tracked at prediction time joined with their delayed labels (``retraining.lookback`` of them)."""

    kind: Literal["metrics_store"]


DatasetSource = Annotated[FileSource | SqlSource | SparkSource, Field(discriminator="kind")]
TrainingSource = Annotated[FileSource | SqlSource | SparkSource | SyntheticSource, Field(discriminator="kind")]
RetrainingSource = Annotated[FileSource | SqlSource | SparkSource | MetricsStoreSource, Field(discriminator="kind")]


class RetrainingData(Strict):
    source: RetrainingSource = MetricsStoreSource(kind="metrics_store")
    """Recent labelled rows: the metrics store (default) or a data set, limited to ``retraining.lookback``."""
    include_training: bool = False
    """Also train on the original training data (``data.training``); the held-out rows stay recent ones."""


class LeadRange(Strict):
    """A seeded random lead, uniform in ``[min, max]``."""

    min: Duration = timedelta(0)
    max: Duration

    @model_validator(mode="after")
    def _ordered(self) -> LeadRange:
        if self.max < self.min:
            raise ValueError("max must not be less than min")
        return self


class ReplayDrift(Strict):
    """Modelled concept drift: from ``after`` on, rows matching ``where`` get another label."""

    after: Instant
    """Data set time from which the drift applies."""
    where: dict[str, str | int | list[str | int]] = Field(min_length=1)
    """Column -> value (or values) the affected rows have, e.g. ``{Contract: Month-to-month}``."""
    label: str | int | None = None
    """The label those rows get; default (binary classification): the other class."""
    share: float = Field(default=1.0, gt=0, le=1)
    """Fraction of the matching rows affected (seeded)."""


class ReplayConfig(Strict):
    """``simulate_traffic`` replays a data set instead of drawing the synthetic scenario."""

    source: DatasetSource
    event_time: str | None = None
    """Column with the time each row is predicted (default: the source's ``time_column``, unless
    ``event_lead`` or ``row_interval`` says otherwise)."""
    label_time: str | None = None
    """Column with the time each row's label becomes known."""
    label_delay: Duration | None = None
    """Without ``label_time``: the label is known this long after the event (data set time)."""
    event_lead: LeadRange | None = None
    """Without ``event_time``: the event is this long before the label time (seeded, per row)."""
    row_interval: Duration | None = None
    """Data without any time: one row every ``row_interval`` of data set time from ``start``."""
    start: Instant | None = None
    """Data set time the replay starts at (default: its first event)."""
    speed: float = Field(default=1.0, gt=0, le=1e7)
    """Data set time per pipeline time: 168 replays a week of data in each hour."""
    seed: int = 0
    drift: ReplayDrift | None = None

    @model_validator(mode="after")
    def _times(self) -> ReplayConfig:
        if self.event_lead and self.event_time:
            raise ValueError("event_lead derives the event time from label_time: do not set event_time as well")
        if self.event_lead and not self.label_time:
            raise ValueError("event_lead needs label_time (the event is that long before the label)")
        if not (self.event_time or self.source.time_column or self.event_lead or self.row_interval):
            raise ValueError(
                "say when each row happens: event_time (or source.time_column), event_lead or row_interval"
            )
        if self.row_interval is not None and (self.event_time or self.label_time):
            raise ValueError("row_interval is for data without times: drop it or event_time and label_time")
        if self.row_interval is not None and self.start is None:
            raise ValueError("row_interval needs start (the data set time of the first row)")
        if self.label_time is None and self.label_delay is None:
            raise ValueError("say when labels are known: label_time or label_delay")
        if self.label_time is not None and self.label_delay is not None:
            raise ValueError("set label_time or label_delay, not both")
        return self


class DataConfig(Strict):
    training: TrainingSource = SyntheticSource(kind="synthetic")
    """Initial training data (bootstrap)."""
    retraining: RetrainingData = RetrainingData()
    replay: ReplayConfig | None = None
    """Replay a data set as traffic; none: the synthetic scenario (``scenario:``)."""


def data_problems(
    data: DataConfig, task: str, classes: list[Any], mapping: dict[str, Any], retrain_metric: str | None
) -> list[str]:
    """Cross-field problems of ``data`` and ``retraining.metric`` against the model spec.

    Args:
        data: the ``data`` section.
        task: ``model.task``.
        classes: the resolved ``model.label`` classes ([] for regression).
        mapping: ``model.label.mapping`` (raw text -> class).
        retrain_metric: ``retraining.metric``.

    Returns:
        One message per problem, each naming its key.
    """
    problems = []
    if retrain_metric is not None:
        problems.append(metric_task_problem(retrain_metric, task, "retraining.metric"))
    drift = data.replay.drift if data.replay else None
    if drift is not None:
        if task == "regression" and drift.label is None:
            problems.append("data.replay.drift.label: a regression target has no 'other class': set the label")
        elif task == "classification" and drift.label is None and len(classes) != 2:
            problems.append("data.replay.drift.label: with more than two classes, name the label drifted rows get")
        elif task == "classification" and drift.label is not None:
            mapped = mapping.get(str(drift.label), drift.label)
            if str(mapped) not in map(str, classes):
                problems.append(
                    f"data.replay.drift.label: {drift.label!r} is not one of model.label.classes {classes} "
                    "(nor mapped to one by model.label.mapping)"
                )
    return [p for p in problems if p]
