"""Durations written the way operators write them: ``90s``, ``30m``, ``1h``, ``2d``, ``2w`` (or seconds).

Parsing and formatting are ``cmlbase.durations``' (the local workspace reads fault and rehearsal
durations the same way); this module adds ``Duration``, the config's pydantic field type.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any

from cmlbase.durations import format_duration, parse_duration, to_ms

__all__ = ["format_duration", "parse_duration", "to_ms"]  # and ``Duration``, built on first use (below)

if TYPE_CHECKING:
    #: What the type checker sees: a ``Duration`` field holds a ``timedelta`` (pydantic parses ``"90s"`` to one).
    Duration = timedelta


def __getattr__(name: str) -> Any:
    """``Duration``, the pydantic field type, is built on first use: importing pydantic takes about a
    tenth of a second, which commands that only parse a duration (``analyze --window``) need not pay."""
    if name != "Duration":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from pydantic import BeforeValidator, PlainSerializer

    duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration, return_type=str)]
    globals()["Duration"] = duration
    return duration
