"""A CSV file read a chunk of rows at a time, tolerantly: a malformed line is set aside, the rest is read.

A line whose number of fields differs from the header's (an unquoted comma, a half-written last
line) is a ``BadLine``, with its line number and what was wrong; every other row is read as text
(blanks as ``""``), as ``pandas.read_csv(dtype=str, keep_default_na=False)`` reads it. Blank lines
are skipped. A file that cannot be read as UTF-8 CSV text at all raises ``Unreadable``.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

#: Characters of a malformed line kept in its sample.
SHOWN_CHARS = 200


class Unreadable(Exception):
    """The file is not CSV text this reader can go on with (its reason is the message)."""


@dataclass(frozen=True)
class BadLine:
    """A line that is not a row of the file: where it is and why."""

    row: int
    line: int
    problem: str
    text: str


@dataclass
class Rows:
    """Some consecutive rows of a CSV file.

    Attributes:
        frame: the well-formed rows, every column as text.
        rows: each one's row number in the file (1 = the first after the header).
        lines: each one's first line number (1 = the header).
        bad: the malformed lines among them.
    """

    frame: pd.DataFrame
    rows: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    bad: list[BadLine] = field(default_factory=list)


def header_names(header: list[str]) -> list[str]:
    """Column names as pandas names them: a repeated name gets ``.1``, ``.2``."""
    seen: dict[str, int] = {}
    names = []
    for name in header:
        n = seen.get(name, 0)
        seen[name] = n + 1
        names.append(name if n == 0 else f"{name}.{n}")
    return names


def read_csv_rows(path: Path, rows: int) -> Iterator[Rows]:
    """The file's rows, ``rows`` well-formed ones at a time (the first chunk may be empty: a header only).

    Raises:
        Unreadable: no header line, bytes that are not UTF-8, or CSV the reader cannot go on with
            (the rows before it were yielded).
    """
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            while header == []:  # blank lines before the header
                header = next(reader, None)
            if not header:
                raise Unreadable("no header line")
            names = header_names(header)
            yield from _chunks(reader, names, rows)
    except UnicodeDecodeError as exc:
        raise Unreadable(f"not UTF-8 text (byte {exc.start} of a block: {exc.reason})") from None
    except csv.Error as exc:
        raise Unreadable(f"not CSV the reader can go on with ({exc})") from None


def _chunks(reader, names: list[str], rows: int) -> Iterator[Rows]:
    width = len(names)
    batch: list[list[str]] = []
    out = Rows(pd.DataFrame(columns=names))
    ordinal, end = 0, reader.line_num
    yielded = False
    for record in reader:
        first, end = end + 1, reader.line_num
        if not record:
            continue
        ordinal += 1
        if len(record) != width:
            text = ",".join(record)
            shown = text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "..."
            out.bad.append(BadLine(ordinal, first, f"expected {width} fields, saw {len(record)}", shown))
            continue
        batch.append(record)
        out.rows.append(ordinal)
        out.lines.append(first)
        if len(batch) >= rows:
            out.frame = pd.DataFrame(batch, columns=names)
            yield out
            yielded = True
            batch, out = [], Rows(pd.DataFrame(columns=names))
    if batch or out.bad or not yielded:
        out.frame = pd.DataFrame(batch, columns=names) if batch else pd.DataFrame(columns=names)
        yield out
