"""Reading a source a chunk of rows at a time: files (skipping those already read) and SQL (streamed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.core.data_config import FileSource, SqlSource
from monitoring.core.errors import DataError
from monitoring.domain.sources.tables import matching_files, sql_connection


@dataclass(frozen=True)
class FileMark:
    """A file as it was read: a changed size or modification time means it is read again."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class Chunk:
    """Some consecutive rows of a source.

    Attributes:
        frame: the rows (CSV: text, blanks as ""; Parquet and SQL: typed).
        locate: a position in ``frame`` -> where that row is (``row 12 (line 13) of crm/day-3.csv``).
        finished: the file this chunk ends, once all its rows were read (None for SQL and mid-file).
    """

    frame: pd.DataFrame
    locate: Callable[[int], str]
    finished: FileMark | None = None


def _csv_locate(rel: str, first: int, csv: bool) -> Callable[[int], str]:
    def locate(i: int) -> str:
        row = first + i + 1
        return f"row {row}" + (f" (line {row + 1})" if csv else "") + f" of {rel}"

    return locate


def file_chunks(
    source: FileSource, root: Path, name: str, rows: int, seen: Callable[[FileMark], bool]
) -> Iterator[Chunk]:
    """The rows of every matching file not ``seen`` unchanged, in name order, ``rows`` at a time.

    Args:
        source: the file source.
        root: the project root.
        name: the source, for messages.
        rows: rows per chunk.
        seen: whether a file was read completely before, exactly as it is now.

    Raises:
        DataError: a file cannot be read (names the file). No file matching is not an error (the
            first export may not have landed yet): nothing is yielded.
    """
    try:
        paths = matching_files(source, root, name)
    except DataError:
        return
    for path in paths:
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        stat = path.stat()
        mark = FileMark(rel, stat.st_size, stat.st_mtime_ns)
        if seen(mark):
            continue
        first, last = 0, None
        try:
            for frame in _read_file(source, path, rows):
                if last is not None:
                    yield last
                last = Chunk(frame, _csv_locate(rel, first, source.kind == "csv"))
                first += len(frame)
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise DataError(f"{name}: cannot read {rel} as {source.kind} ({type(exc).__name__}: {exc})") from None
        if last is None:
            last = Chunk(pd.DataFrame(), _csv_locate(rel, 0, source.kind == "csv"))
        last.finished = mark
        yield last


def _read_file(source: FileSource, path: Path, rows: int) -> Iterator[pd.DataFrame]:
    if source.kind == "csv":
        with pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[], chunksize=rows) as reader:
            yield from reader
        return
    import pyarrow.parquet as pq

    for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
        yield batch.to_pandas()


def sql_chunks(
    source: SqlSource, root: Path, name: str, rows: int, params: Mapping[str, Any], env: Mapping[str, str] | None = None
) -> Iterator[Chunk]:
    """The query's result, streamed ``rows`` at a time (a server-side cursor on PostgreSQL).

    Args:
        params: bound parameters of the query (``{"watermark": ...}``).

    Raises:
        ConfigError: the URL's variable is unset or the URL is not one SQLAlchemy understands.
        DataError: the database cannot be reached or the query fails (the URL shown without password).
    """
    import sqlalchemy

    first = 0
    with sql_connection(source, root, name, env) as (conn, _):
        streamed = conn.execution_options(stream_results=True, max_row_buffer=rows)
        for frame in pd.read_sql_query(sqlalchemy.text(source.query), streamed, params=dict(params), chunksize=rows):
            yield Chunk(frame, lambda i, start=first: f"result row {start + i + 1} of the query")
            first += len(frame)
