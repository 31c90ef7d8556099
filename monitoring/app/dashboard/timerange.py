"""The dashboard's time range: a preset (``24h``, ``7d``, ``all``) or explicit ``from``/``to``, kept in every link.

A page asked for without a range opens on ``7d``, or on ``all`` when the stored windows span
less than that (after a ten-hour rehearsal, ten hours fill the charts instead of their right
edge). That default is not written into links: each page works it out again from its own data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from cmlbase.clock import iso_ms
from monitoring.core.durations import parse_duration, to_ms
from monitoring.core.errors import ConfigError

#: The presets the range control offers, shortest first.
PRESETS = ("6h", "24h", "7d", "30d", "90d", "all")
DEFAULT_PRESET = "7d"
_EMPTY_SPAN_MS = 24 * 3_600_000


@dataclass(frozen=True)
class TimeRange:
    """``[since_ms, until_ms)``, and how it was asked for (a preset, or None for explicit times).

    ``asked`` is False for the default range of a request that named none: links then carry no
    range, so the page they lead to opens on its own default.
    """

    since_ms: int
    until_ms: int
    preset: str | None = DEFAULT_PRESET
    asked: bool = True

    def query(self) -> dict[str, str]:
        """The query parameters that ask for this range again (what every link keeps; none for a default)."""
        if not self.asked:
            return {}
        if self.preset is not None:
            return {"range": self.preset}
        return {"from": iso_ms(self.since_ms), "to": iso_ms(self.until_ms)}

    def to_dict(self) -> dict[str, object]:
        return {"from_ms": self.since_ms, "to_ms": self.until_ms, "preset": self.preset}


def parse_time(text: str, name: str) -> int:
    """An ISO-8601 time (``2026-11-29T10:00``, ``...Z`` or with an offset; naive means UTC) as epoch ms.

    Raises:
        ConfigError: not such a time (names the parameter).
    """
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected an ISO time such as 2026-11-29T10:00Z, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def _all(now_ms: int, span: tuple[int, int] | None, asked: bool = True) -> TimeRange:
    """``all``: from the first window to the last window's end or now, whichever is later."""
    if span is None:
        return TimeRange(now_ms - _EMPTY_SPAN_MS, now_ms, "all", asked)
    return TimeRange(min(span[0], now_ms - 1), max(span[1], now_ms), "all", asked)


def default_range(now_ms: int, span: tuple[int, int] | None) -> TimeRange:
    """The range of a request that names none: ``all`` when the windows start less than
    ``DEFAULT_PRESET`` before now (the data would fill only the right edge of a longer one),
    else ``DEFAULT_PRESET`` ending now."""
    length = to_ms(parse_duration(DEFAULT_PRESET))
    if span is not None and now_ms - span[0] < length:
        return _all(now_ms, span, asked=False)
    return TimeRange(now_ms - length, now_ms, DEFAULT_PRESET, asked=False)


def parse_range(args: Mapping[str, str], now_ms: int, span: tuple[int, int] | None) -> TimeRange:
    """The range a request asks for.

    Args:
        args: the query parameters: ``range`` (a preset or any duration such as ``12h``), or
            ``from`` and ``to`` (``to`` alone: the preset's length ending there). None of them:
            ``default_range``.
        now_ms: the pipeline's clock now.
        span: the first window start and last window end (for ``all`` and the default), None
            when there are none.

    Raises:
        ConfigError: an unreadable duration or time, or ``from`` not before ``to``.
    """
    preset = (args.get("range") or "").strip() or None
    if preset is None and not args.get("from") and not args.get("to"):
        return default_range(now_ms, span)
    until = parse_time(args["to"], "to") if args.get("to") else None
    if args.get("from"):
        since = parse_time(args["from"], "from")
        until = until if until is not None else now_ms
        if since >= until:
            raise ConfigError(f"from ({iso_ms(since)}) must be before to ({iso_ms(until)})")
        return TimeRange(since, until, None)
    preset = preset or DEFAULT_PRESET
    if preset == "all":
        return _all(now_ms, span)
    try:
        length = to_ms(parse_duration(preset))
    except (ValueError, TypeError):
        raise ConfigError(
            f"range: expected one of {', '.join(PRESETS)} or a duration such as 12h, got {preset!r}"
        ) from None
    if length <= 0:
        raise ConfigError(f"range: must be a positive duration, got {preset!r}")
    end = until if until is not None else now_ms
    return TimeRange(end - length, end, preset if until is None else None)
