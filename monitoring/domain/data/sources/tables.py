"""Reading a data set's raw rows: CSV and Parquet files (a path or a glob inside the project) and SQL queries."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config.data import FileSource, SqlSource
from monitoring.core.errors import ConfigError, DataError


@dataclass
class RawTable:
    """Rows as read, and where each one came from.

    Attributes:
        frame: the rows (CSV: every column as text, blanks as ""; Parquet and SQL: typed).
        name: the source, for messages (``data.training (csv examples/x/*.csv)``).
        origin: each row's position in the data as read (kept through filters and shuffles).
        describe: an original position -> where that row is (``row 12 of examples/x/a.csv``).
        read_from: where the rows were read, for messages (``examples/x/a.csv``, ``the query on
            sqlite:///...``: a URL without its password).
    """

    frame: pd.DataFrame
    name: str
    origin: np.ndarray
    describe: Callable[[int], str]
    read_from: str = ""

    def locate(self, i: int) -> str:
        """Where the row now at position ``i`` came from."""
        return self.describe(int(self.origin[i]))

    def take(self, index: np.ndarray) -> RawTable:
        """The rows at ``index`` (positions or a mask), in that order."""
        frame = self.frame.iloc[index].reset_index(drop=True)
        return RawTable(frame, self.name, self.origin[index], self.describe, self.read_from)


def matching_files(source: FileSource, root: Path, name: str) -> list[Path]:
    """The files a file source names, in name order.

    Raises:
        DataError: no file matches.
    """
    pattern = source.path
    if any(ch in pattern for ch in "*?["):
        found = sorted(p for p in root.glob(pattern) if p.is_file())
    else:
        found = [root / pattern] if (root / pattern).is_file() else []
    if not found:
        raise DataError(f"{name}: no file matches {pattern!r} under the project root {root}")
    return found


def read_files(source: FileSource, root: Path, name: str) -> RawTable:
    """Read every matching file, in name order, into one table.

    Raises:
        DataError: no file matches, or a file cannot be read (names the file).
    """
    frames, spans = [], []
    for path in matching_files(source, root, name):
        rel = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        try:
            if source.kind == "csv":
                frame = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[])
            else:
                frame = pd.read_parquet(path)
        except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise DataError(f"{name}: cannot read {rel} as {source.kind} ({type(exc).__name__}: {exc})") from None
        frames.append(frame)
        spans.append((len(frame), rel))
    frame = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    starts = np.cumsum([0] + [n for n, _ in spans])

    def describe(position: int) -> str:
        k = int(np.searchsorted(starts, position, side="right")) - 1
        row = position - int(starts[k]) + 1
        line = f" (line {row + 1})" if source.kind == "csv" else ""
        return f"row {row}{line} of {spans[k][1]}"

    files = [rel for _, rel in spans]
    read_from = (
        files[0] if len(files) == 1 else f"{len(files)} files ({', '.join(files[:5])}{', ...' * (len(files) > 5)})"
    )
    return RawTable(frame, name, np.arange(len(frame)), describe, read_from)


def sql_url(source: SqlSource, root: Path, env: Mapping[str, str]) -> str:
    """The SQLAlchemy URL: from ``url_env``'s variable or ``url``; a relative SQLite path is the project's.

    ``postgresql://`` without a driver means the psycopg (3) driver the project installs.

    Raises:
        ConfigError: the variable is not set.
    """
    if source.url_env:
        url = env.get(source.url_env, "")
        if not url:
            raise ConfigError(f"{source.url_env} is not set: it must hold the SQLAlchemy URL of the data's database")
    else:
        url = source.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rest = url[len("sqlite:///") :]
        if rest and rest != ":memory:" and not Path(rest).is_absolute():
            url = f"sqlite:///{(root / rest).as_posix()}"
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            url = "postgresql+psycopg://" + url[len(plain) :]
    return url


@contextmanager
def sql_connection(
    source: SqlSource, root: Path, name: str, env: Mapping[str, str] | None = None
) -> Iterator[tuple[Any, str]]:
    """A SQLAlchemy connection to the source's database and its URL as shown (no password); errors
    inside become messages naming the source.

    Raises:
        ConfigError: the URL's variable is unset or the URL is not one SQLAlchemy understands.
        DataError: the database cannot be reached or a query fails (the URL shown without password).
    """
    import sqlalchemy
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    url = sql_url(source, root, os.environ if env is None else env)
    try:
        parsed = sqlalchemy.make_url(url)
        engine = sqlalchemy.create_engine(parsed)
    except (ArgumentError, NoSuchModuleError, ValueError) as exc:
        where = source.url_env or "url"
        raise ConfigError(f"{name}: {where} is not a usable SQLAlchemy URL ({type(exc).__name__}: {exc})") from None
    shown = parsed.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            yield conn, shown
    except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
        cause = exc.__cause__ if isinstance(exc, pd.errors.DatabaseError) else exc  # pandas wraps the driver's error
        detail = str(getattr(cause, "orig", None) or cause or exc).splitlines()[0]
        raise DataError(f"{name}: the query on {shown} failed ({type(exc).__name__}: {detail})") from None
    finally:
        engine.dispose()


def read_sql(source: SqlSource, root: Path, name: str, env: Mapping[str, str] | None = None) -> RawTable:
    """Run the query and read its rows.

    Raises:
        ConfigError: the URL's variable is unset or the URL is not one SQLAlchemy understands.
        DataError: the database cannot be reached or the query fails (the URL shown without password).
    """
    import sqlalchemy

    with sql_connection(source, root, name, env) as (conn, shown):
        frame = pd.read_sql_query(sqlalchemy.text(source.query), conn)
    describe = lambda position: f"result row {position + 1} of the query"  # noqa: E731
    return RawTable(frame, name, np.arange(len(frame)), describe, f"the query on {shown}")
