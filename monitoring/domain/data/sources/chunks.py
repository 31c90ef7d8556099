"""Reading a source a chunk of rows at a time: files (skipping those already read or quarantined) and SQL (streamed)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.config.data import FileSource, SqlSource
from monitoring.core.errors import DataError
from monitoring.domain.data.sources.csv_lines import Unreadable, read_csv_rows
from monitoring.domain.data.sources.tables import matching_files, sql_connection


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
        finished: the file this chunk ends, once all its rows were read or it was given up on
            (``quarantined``); None for SQL and mid-file.
        bad_lines: malformed lines among these rows (CSV), each ``(where, problem, text)``.
        quarantined: why the file ``finished`` names cannot be read (its rows before were yielded).
        empty: the file (a path) is 0 bytes: nothing to read yet.
    """

    frame: pd.DataFrame
    locate: Callable[[int], str]
    finished: FileMark | None = None
    bad_lines: list[tuple[str, str, str]] = field(default_factory=list)
    quarantined: str | None = None
    empty: str | None = None


def _csv_locate(rel: str, rows: list[int], lines: list[int]) -> Callable[[int], str]:
    return lambda i: f"row {rows[i]} (line {lines[i]}) of {rel}"


def _parquet_locate(rel: str, first: int) -> Callable[[int], str]:
    return lambda i: f"row {first + i + 1} of {rel}"


def _missing(columns: Iterable[str], needs: Mapping[str, str]) -> str | None:
    """Why a file lacking some of ``needs`` (column -> what it holds) cannot be used, or None."""
    have = list(map(str, columns))
    missing = [f"{col!r} ({what})" for col, what in needs.items() if col not in have]
    if not missing:
        return None
    return f"has no column {', '.join(missing)}; it has {have[:20]}"


def file_chunks(
    source: FileSource,
    root: Path,
    name: str,
    rows: int,
    skip: Callable[[FileMark], bool],
    needs: Mapping[str, str],
) -> Iterator[Chunk]:
    """The rows of every matching file not to ``skip``, in name order, ``rows`` at a time.

    A file is never a reason to stop the feed: a 0-byte file yields one ``empty`` chunk (it may still
    be being written); a malformed CSV line is a ``bad_lines`` entry and the rest is read; a file
    that cannot be read at all, or lacks a column of ``needs``, ends with a ``quarantined`` chunk.

    Args:
        source: the file source.
        root: the project root.
        name: the source, for messages.
        rows: rows per chunk.
        skip: whether a file is known as it is now (read completely, or quarantined) and is left alone.
        needs: the columns every file must have -> what each holds (``label``).

    No file matching is not an error (the first export may not have landed yet): nothing is yielded.
    """
    try:
        paths = matching_files(source, root, name)
    except DataError:
        return
    for path in paths:
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        try:
            stat = path.stat()
        except OSError:  # removed since the glob matched: the next run sees what is there
            continue
        mark = FileMark(rel, stat.st_size, stat.st_mtime_ns)
        if skip(mark):
            continue
        if not stat.st_size:
            yield Chunk(pd.DataFrame(), _parquet_locate(rel, 0), empty=rel)
            continue
        yield from _file(source, path, rel, mark, rows, needs)


def _file(
    source: FileSource, path: Path, rel: str, mark: FileMark, rows: int, needs: Mapping[str, str]
) -> Iterator[Chunk]:
    """One file's chunks, the last one ``finished`` (and ``quarantined`` when the file cannot be used)."""
    last: Chunk | None = None
    try:
        for chunk in _csv(path, rel, rows) if source.kind == "csv" else _parquet(path, rel, rows):
            if last is None:
                missing = _missing(chunk.frame.columns, needs)
                if missing is not None:
                    yield Chunk(pd.DataFrame(), chunk.locate, finished=mark, quarantined=missing)
                    return
            else:
                yield last
            last = chunk
    except Unreadable as exc:
        broke: str | None = f"cannot be read as {source.kind}: {exc}"
    except (OSError, ValueError) as exc:  # pyarrow's errors are ValueErrors and OSErrors
        broke = f"cannot be read as {source.kind} ({type(exc).__name__}: {exc})"
    else:
        broke = None
    if broke is not None:
        if last is not None:
            yield last  # the rows read before the file broke off
        yield Chunk(pd.DataFrame(), _parquet_locate(rel, 0), finished=mark, quarantined=broke)
        return
    if last is None:
        last = Chunk(pd.DataFrame(), _parquet_locate(rel, 0))
    last.finished = mark
    yield last


def _csv(path: Path, rel: str, rows: int) -> Iterator[Chunk]:
    for part in read_csv_rows(path, rows):
        bad = [(f"row {b.row} (line {b.line}) of {rel}", b.problem, b.text) for b in part.bad]
        yield Chunk(part.frame, _csv_locate(rel, part.rows, part.lines), bad_lines=bad)


def _parquet(path: Path, rel: str, rows: int) -> Iterator[Chunk]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    first = 0
    names = parquet.schema_arrow.names
    yielded = False
    for batch in parquet.iter_batches(batch_size=rows):
        frame = batch.to_pandas()
        yield Chunk(frame, _parquet_locate(rel, first))
        yielded = True
        first += len(frame)
    if not yielded:
        yield Chunk(pd.DataFrame(columns=names), _parquet_locate(rel, 0))


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
