"""The dashboard's time range: a preset (``24h``, ``7d``, ``all``) or explicit ``from``/``to``, kept in every link."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

from monitoring.core.clock import iso_ms
from monitoring.core.durations import parse_duration, to_ms
from monitoring.core.errors import ConfigError

#: The presets the range control offers, shortest first.
PRESETS = ("6h", "24h", "7d", "30d", "90d", "all")
DEFAULT_PRESET = "7d"
_EMPTY_SPAN_MS = 24 * 3_600_000


@dataclass(frozen=True)
class TimeRange:
    """``[since_ms, until_ms)``, and how it was asked for (a preset, or None for explicit times)."""

    since_ms: int
    until_ms: int
    preset: str | None = DEFAULT_PRESET

    def query(self) -> dict[str, str]:
        """The query parameters that ask for this range again (what every link keeps)."""
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


def parse_range(args: Mapping[str, str], now_ms: int, span: tuple[int, int] | None) -> TimeRange:
    """The range a request asks for.

    Args:
        args: the query parameters: ``range`` (a preset or any duration such as ``12h``), or
            ``from`` and ``to`` (``to`` alone: the preset's length ending there).
        now_ms: the pipeline's clock now.
        span: the first window start and last window end (for ``all``), None when there are none.

    Raises:
        ConfigError: an unreadable duration or time, or ``from`` not before ``to``.
    """
    preset = (args.get("range") or "").strip() or None
    until = parse_time(args["to"], "to") if args.get("to") else None
    if args.get("from"):
        since = parse_time(args["from"], "from")
        until = until if until is not None else now_ms
        if since >= until:
            raise ConfigError(f"from ({iso_ms(since)}) must be before to ({iso_ms(until)})")
        return TimeRange(since, until, None)
    preset = preset or DEFAULT_PRESET
    if preset == "all":
        if span is None:
            return TimeRange(now_ms - _EMPTY_SPAN_MS, now_ms, preset)
        return TimeRange(min(span[0], now_ms - 1), max(span[1], now_ms), preset)
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
