"""Cron schedules of jobs: checking them and finding their next fire time in the job's time zone."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, CroniterBadDateError, croniter

from localcml.jobs import exceptions


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise exceptions.bad_timezone(name) from None


def check_schedule(schedule: str, tz: str) -> None:
    """Refuse a schedule that is not a five-field cron expression, or an unknown time zone.

    Raises:
        ApiError: INVALID_ARGUMENT naming the schedule or the time zone.
    """
    _zone(tz)
    if len(schedule.split()) != 5:
        raise exceptions.bad_schedule(schedule, f"expected 5 fields, got {len(schedule.split())}")
    try:
        croniter(schedule)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise exceptions.bad_schedule(schedule, str(exc)) from None


def next_fire_ms(schedule: str, tz: str, after_ms: int) -> int:
    """The first time strictly after ``after_ms`` at which ``schedule`` fires, read in time zone ``tz``.

    Args:
        schedule: a five-field cron expression, e.g. ``0 * * * *``.
        tz: the job's IANA time zone (CML's default is ``America/Los_Angeles``).
        after_ms: milliseconds since the epoch.

    Returns:
        Milliseconds since the epoch (daylight-saving changes follow the zone's rules).
    """
    start = datetime.fromtimestamp(after_ms / 1000, tz=timezone.utc).astimezone(_zone(tz))
    try:
        fire = croniter(schedule, start).get_next(datetime)
    except CroniterBadDateError as exc:  # e.g. 30 February: never fires
        raise exceptions.bad_schedule(schedule, str(exc)) from None
    return int(fire.timestamp() * 1000)
