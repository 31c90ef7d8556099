"""Errors of the jobs service, as CML answers them."""

from __future__ import annotations

from localcml.core.errors import ApiError, invalid, precondition


def active_run(job: dict, run: dict) -> ApiError:
    return precondition(
        f"job {job['id']} ({job['name']!r}) already has an active run {run['id']} ({run['status']}); "
        "a job can have only one active run"
    )


def bad_schedule(schedule: str, detail: str) -> ApiError:
    return invalid(
        f"schedule {schedule!r} is not a cron expression (minute hour day-of-month month day-of-week): {detail}"
    )


def bad_timezone(timezone: str) -> ApiError:
    return invalid(f"timezone {timezone!r} is not an IANA time zone name such as 'America/Los_Angeles' or 'UTC'")


def not_active(run_id: str, status: str | None) -> ApiError:
    return precondition(f"job run {run_id} is not active (status {status})")


def shutting_down() -> ApiError:
    return precondition("the local workspace is shutting down; no new runs start")
