"""The project's exception hierarchy, split by who must act, and the job exit codes."""

from __future__ import annotations

from typing import Any

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_CONFIG = 2
EXIT_PLATFORM = 3
EXIT_DATA = 4
EXIT_REDEPLOY_FAILED = 5
EXIT_BUSY = 6


class MonitoringError(Exception):
    """Base of every error this project raises on purpose."""

    exit_code = EXIT_INTERNAL

    @property
    def verdict_fields(self) -> dict[str, Any]:
        """Extra fields for the failed job's VERDICT line, added where the error passes (``webhook=sent``)."""
        return self.__dict__.setdefault("_verdict_fields", {})


class ConfigError(MonitoringError):
    """The YAML, the environment or the command line is wrong: a person must fix it.

    Args:
        problems: every problem found, each naming its file and dotted field path.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class PlatformError(MonitoringError):
    """A CML (or local workspace) call failed."""

    exit_code = EXIT_PLATFORM


class TransientPlatformError(PlatformError):
    """Timeouts, connection errors, 408/429/5xx: retried at the platform edge."""


class PlatformRequestError(PlatformError):
    """The platform refused the request (4xx other than 408/429): not retried.

    Args:
        message: what was attempted, on which object, and what the platform said.
        status: the HTTP status, when there was one.
    """

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


class BusyError(PlatformError):
    """The job already has an active run, or another run holds the work."""

    exit_code = EXIT_BUSY


class DataError(MonitoringError):
    """Records or artifacts are malformed: names the record or file and what was expected."""

    exit_code = EXIT_DATA


class RedeployError(MonitoringError):
    """The redeploy failed; the previous deployment keeps serving (or was restored)."""

    exit_code = EXIT_REDEPLOY_FAILED
