"""Durations written the way operators write them: ``90s``, ``30m``, ``1h``, ``2d``, ``2w`` (or seconds)."""

from __future__ import annotations

import re
from datetime import timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")


def parse_duration(value: object) -> timedelta:
    """Parse ``"30m"``, ``"1h"``, ``"2w"``, ``45`` (seconds) or a timedelta.

    Raises:
        ValueError: for anything else, with the accepted forms in the message.
    """
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 30m, 1h or 2d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("must not be negative")
        return timedelta(seconds=value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match:
            return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    raise ValueError(f"expected a duration such as 90s, 30m, 1h or 2d, got {value!r}")


def format_duration(value: timedelta) -> str:
    """The shortest exact text for ``value``: ``90s``, ``30m``, ``2d`` (fractions in seconds: ``0.5s``)."""
    seconds = value.total_seconds()
    for unit in ("d", "h", "m", "s"):
        size = _UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def to_ms(value: timedelta) -> int:
    """Whole milliseconds (rounded)."""
    return int(round(value.total_seconds() * 1000))
