"""Data sets for training, retraining and replay: files and SQL read, rows selected, checked against the spec."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from monitoring.config.data import FileSource, SqlSource, row_range
from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import DataError
from monitoring.domain.data.sources.schema import TIME_COLUMN, conform, time_column
from monitoring.domain.data.sources.tables import RawTable, read_files, read_sql

__all__ = ["TIME_COLUMN", "describe_source", "load_dataset", "read_table", "select_rows"]

Source = FileSource | SqlSource


def describe_source(source: Source, what: str) -> str:
    """``data.training (csv examples/churn/data/*.csv)``: how messages name a source."""
    detail = source.path if isinstance(source, FileSource) else (f"${source.url_env}" if source.url_env else "url")
    return f"{what} ({source.kind} {detail})"


def read_table(source: Source, root: Path, what: str, env: Mapping[str, str] | None = None) -> RawTable:
    """The source's rows as read (see ``tables``).

    Raises:
        ConfigError: an SQL URL variable is unset or unusable.
        DataError: no file matches, a file cannot be read, the query fails.
    """
    name = describe_source(source, what)
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
        DataError: the data cannot be read or does not match the spec (names source, column, row).
    """
    table, times = select_rows(read_table(source, root, what, env), source, window_ms)
    frame = table.frame
    if times is not None:
        frame = frame.assign(**{TIME_COLUMN: times})
    return conform(frame, spec, table.name, table.locate, with_label=with_label)
