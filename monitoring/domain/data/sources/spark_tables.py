"""Reading a data set through a CML data connection's Spark: a Spark SQL query or a table, whole or a chunk at a time.

The session comes from ``cml.data_v1.get_connection(name).get_spark_session()``: inside CML the
workspace's Spark (the Spark runtime add-on), in the local workspace a local Spark over its
warehouse. ``cml`` is loaded by name, lazily, as the adapter loads ``cdsw`` and ``cmlapi``.
"""

from __future__ import annotations

import importlib
import importlib.util
import warnings
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config.data import SparkSource
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.data.sources.chunks import Chunk
from monitoring.domain.data.sources.tables import RawTable

#: The module CML's data connections come from (loaded by name: no module imports ``cml``).
DATA_MODULE = "cml.data_v1"


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None (not importable)
        return False


def spark_problems(source: SparkSource, what: str) -> list[str]:
    """What keeps ``source`` from being read here, found without starting Spark (pyspark, ``cml.data_v1``)."""
    problems = []
    if not _importable("pyspark"):
        problems.append(
            f"{what}.kind: spark needs pyspark (in CML: add the Spark runtime add-on to the job; "
            "locally: pip install 'cml-monitor[spark]')"
        )
    if not _importable(DATA_MODULE):
        problems.append(
            f"{what}.connection: {DATA_MODULE} is not importable here: run inside CML or the local workspace "
            f"(data connection {source.connection!r})"
        )
    return problems


def session(source: SparkSource, what: str) -> Any:
    """The Spark session of the source's data connection.

    Raises:
        ConfigError: pyspark or ``cml.data_v1`` is missing, or the connection cannot be opened
            (an undefined name): naming ``<what>.connection``.
    """
    problems = spark_problems(source, what)
    if problems:
        raise ConfigError(problems)
    data = importlib.import_module(DATA_MODULE)
    try:
        return data.get_connection(source.connection).get_spark_session()
    except Exception as exc:  # noqa: BLE001 - CML's connection library documents no error types: translated once, here
        reason = "; ".join(getattr(exc, "problems", None) or [str(exc)])  # a list of problems, or one message
        raise ConfigError(
            [
                f"{what}.connection: data connection {source.connection!r} cannot be opened ({type(exc).__name__}: {reason})"
            ]
        ) from None


def statement(source: SparkSource) -> str:
    """The Spark SQL the source runs."""
    return source.query if source.query is not None else f"SELECT * FROM {source.table}"


def _errors() -> tuple[type[BaseException], ...]:
    """pyspark's error bases for a failed analysis or parse (a missing table or column, bad SQL)."""
    found: list[type[BaseException]] = []
    for module, name in (("pyspark.errors", "PySparkException"), ("pyspark.sql.utils", "CapturedException")):
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def run(spark: Any, sql: str, name: str, connection: str) -> Any:
    """``spark.sql(sql)``, a failed analysis a DataError naming the source, the connection and Spark's reason."""
    try:
        return spark.sql(sql)
    except _errors() as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{name}: the Spark query on data connection {connection!r} failed ({reason})") from None


def to_pandas(frame: Any) -> pd.DataFrame:
    """``frame.toPandas()`` (times in the session's time zone), without pyspark 3.5's use of a keyword pandas deprecates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        return frame.toPandas()


def read_spark(source: SparkSource, name: str, what: str) -> RawTable:
    """The query's (or table's) rows, collected into the job.

    Raises:
        ConfigError: see ``session``.
        DataError: the table or a column does not exist, or the query is not valid Spark SQL.
    """
    frame = to_pandas(run(session(source, what), statement(source), name, source.connection))
    describe = lambda position: f"result row {position + 1} of the Spark query"  # noqa: E731
    return RawTable(
        frame, name, np.arange(len(frame)), describe, f"the Spark query on connection {source.connection!r}"
    )


def spark_literal(bound: Any) -> str:
    """A watermark bound as a Spark SQL literal (numbers as they are, text quoted)."""
    if isinstance(bound, int | float):
        return repr(bound)
    if isinstance(bound, datetime):  # an aware UTC time: the session's time zone is UTC
        return f"TIMESTAMP '{bound.astimezone(timezone.utc):%Y-%m-%d %H:%M:%S.%f}'"
    return "'" + str(bound).replace("\\", "\\\\").replace("'", "\\'") + "'"


def spark_chunks(source: SparkSource, name: str, what: str, rows: int, watermark: Any) -> Iterator[Chunk]:
    """The source's rows at or after ``watermark`` (on its ``time_column``), ``rows`` at a time.

    A query's ``:watermark`` becomes the bound as a literal; a table is filtered on ``time_column``.
    Rows stream from Spark (``toLocalIterator``): the job holds one chunk.

    Raises:
        ConfigError: see ``session``.
        DataError: see ``read_spark``.
    """
    literal = spark_literal(watermark)
    if source.query is not None:
        sql = source.query.replace(":watermark", literal)
    else:
        sql = f"SELECT * FROM {source.table} WHERE `{source.time_column}` >= {literal}"
    frame = run(session(source, what), sql, name, source.connection)
    columns = frame.columns
    batch: list[Any] = []
    first = 0
    for row in frame.toLocalIterator():
        batch.append(tuple(row))
        if len(batch) == rows:
            yield Chunk(
                pd.DataFrame(batch, columns=columns),
                lambda i, start=first: f"result row {start + i + 1} of the Spark query",
            )
            first += len(batch)
            batch = []
    if batch or not first:
        yield Chunk(
            pd.DataFrame(batch, columns=columns),
            lambda i, start=first: f"result row {start + i + 1} of the Spark query",
        )
