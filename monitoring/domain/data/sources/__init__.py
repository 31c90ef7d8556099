"""Data sets for training, retraining and replay: files and SQL read, rows selected, checked against the spec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from cmlbase.clock import iso_ms
from monitoring.config.data import FileSource, SparkSource, SqlSource, row_range
from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import DataError
from monitoring.domain.data.sources.schema import TIME_COLUMN, conform, time_column
from monitoring.domain.data.sources.tables import RawTable, read_files, read_sql

__all__ = ["TIME_COLUMN", "describe_source", "load_dataset", "read_rows", "read_table", "select_rows"]

Source = FileSource | SqlSource | SparkSource


def describe_source(source: Source, what: str) -> str:
    """``data.training (csv examples/churn/data/*.csv)``: how messages name a source.

    An SQL source is named by its URL (``url:`` never holds a password: the config refuses one) or by
    the variable that holds it (``$CRM_DB_URL``: its value may hold one).
    """
    if isinstance(source, SparkSource):
        return f"{what} (spark {source.connection}: {source.table or 'query'})"
    detail = source.path if isinstance(source, FileSource) else (f"${source.url_env}" if source.url_env else source.url)
    return f"{what} ({source.kind} {detail})"


def read_table(source: Source, root: Path, what: str, env: Mapping[str, str] | None = None) -> RawTable:
    """The source's rows as read (see ``tables``).

    Raises:
        ConfigError: an SQL URL variable is unset or unusable.
        DataError: no file matches, a file cannot be read, the query fails.
    """
    name = describe_source(source, what)
    if isinstance(source, SparkSource):
        from monitoring.domain.data.sources.spark_tables import read_spark

        return read_spark(source, name, what)
    return read_files(source, root, name) if isinstance(source, FileSource) else read_sql(source, root, name, env)


def select_rows(
    table: RawTable, source: Source, window_ms: tuple[int, int] | None = None
) -> tuple[RawTable, np.ndarray | None]:
    """Apply the source's row selection: time filter (``since``, ``until``, ``window_ms``), shuffle, slice.

    Args:
        table: the rows as read.
        source: the source config.
        window_ms: optional ``[start, end)`` in epoch ms on ``time_column`` (a retraining lookback).

    Returns:
        The selected rows and their times in epoch ms (None without ``time_column``); with a time
        column the rows are in time order (ties keep file order) unless shuffled.

    Raises:
        DataError: ``time_column`` is missing or holds a value that is not a time (names the row).
    """
    times = None
    if source.time_column:
        if source.time_column not in table.frame.columns:
            raise DataError(f"{table.name}: has no column {source.time_column!r} (its time_column)")
        where = f"{table.name}: column {source.time_column!r} (time_column)"
        times = time_column(table.frame[source.time_column], source.time_format, where, table.locate)
        keep = np.ones(len(times), dtype=bool)
        if source.since:
            keep &= times >= int(source.since.timestamp() * 1000)
        if source.until:
            keep &= times < int(source.until.timestamp() * 1000)
        if window_ms is not None:
            keep &= (times >= window_ms[0]) & (times < window_ms[1])
        index = np.flatnonzero(keep)
        index = index[np.argsort(times[index], kind="stable")]
        table, times = table.take(index), times[index]
    if source.shuffle_seed is not None:
        order = np.random.default_rng(source.shuffle_seed).permutation(len(table.frame))
        table, times = table.take(order), None if times is None else times[order]
    if source.rows:
        start, end = row_range(source.rows)
        picked = np.arange(len(table.frame))[slice(start, end)]
        table, times = table.take(picked), None if times is None else times[picked]
    return table, times


def _instant(ms: int) -> str:
    return iso_ms(int(ms))


def _time_filter(source: Source, window_ms: tuple[int, int] | None) -> str:
    """The time filter a selection applied, as config names it."""
    parts = []
    if source.since:
        parts.append(f"since {_instant(source.since.timestamp() * 1000)}")
    if source.until:
        parts.append(f"until {_instant(source.until.timestamp() * 1000)}")
    if window_ms is not None:
        parts.append(f"the lookback [{_instant(window_ms[0])}, {_instant(window_ms[1])})")
    return " and ".join(parts)


def read_rows(
    source: Source,
    root: Path,
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    window_ms: tuple[int, int] | None = None,
) -> tuple[RawTable, np.ndarray | None]:
    """``read_table`` then ``select_rows``, refusing a selection without rows.

    Raises:
        ConfigError: an SQL URL variable is unset or unusable.
        DataError: the source cannot be read, yields no rows, or its filters (``since``/``until``, the
            lookback, ``rows``) leave none: naming the source, where it was read and the filter.
    """
    table = read_table(source, root, what, env)
    read = len(table.frame)
    if not read:
        raise DataError(f"{table.name}: {table.read_from} yields no rows (it has columns {_columns(table)})")
    selected, times = select_rows(table, source, window_ms)
    if not len(selected.frame):
        kept = f"{read} rows read"
        if source.time_column:
            span = time_column(table.frame[source.time_column], source.time_format, table.name, table.locate)
            kept += f", {source.time_column!r} from {_instant(span.min())} to {_instant(span.max())},"
        filters = [f for f in (_time_filter(source, window_ms), f"rows {source.rows!r}" if source.rows else "") if f]
        raise DataError(f"{table.name}: no row is left after {' then '.join(filters)} ({kept} from {table.read_from})")
    return selected, times


def _columns(table: RawTable) -> str:
    names = list(map(str, table.frame.columns))
    return (", ".join(names[:40]) + (", ..." if len(names) > 40 else "")) if names else "none"


def load_dataset(
    source: Source,
    spec: ModelConfig,
    root: Path,
    what: str,
    *,
    env: Mapping[str, str] | None = None,
    window_ms: tuple[int, int] | None = None,
    with_label: bool = True,
) -> pd.DataFrame:
    """Read, select and check a data set: the training frame every consumer expects.

    Args:
        source: a file or SQL source.
        spec: the model spec.
        root: the project root (paths and SQLite files are relative to it).
        what: the config key naming the source (``data.training``), for messages.
        env: environment for ``url_env`` (default ``os.environ``).
        window_ms: optional time window on the source's ``time_column``.
        with_label: whether the label column is required.

    Returns:
        ``schema.conform``'s frame, with ``start_ms`` when the source has a time column.

    Raises:
        ConfigError: an SQL URL variable is unset or unusable.
        DataError: the data cannot be read, yields no rows (or none a filter keeps, or none with a
            label), or does not match the spec (names source, where it was read, column, row).
    """
    table, times = read_rows(source, root, what, env=env, window_ms=window_ms)
    frame = conform(table.frame, spec, table.name, table.locate, with_label=with_label, times=times)
    if not len(frame):
        raise DataError(
            f"{table.name}: none of the {len(table.frame)} rows selected from {table.read_from} has a label "
            f"in column {spec.label.name!r}"
        )
    return frame
