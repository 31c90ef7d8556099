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
EXIT_STORE = 7
EXIT_NO_SPACE = 8
EXIT_LOCKED = 9
EXIT_CONTRACT = 10


class MonitoringError(Exception):
    """Base of every error this project raises on purpose.

    ``action``, when set, is what on-call should do about this very error; the job's VERDICT
    prints it instead of the generic action of its exit code.
    """

    exit_code = EXIT_INTERNAL
    action: str | None = None

    @property
    def verdict_fields(self) -> dict[str, Any]:
        """Extra fields for the failed job's VERDICT line, added where the error passes (``webhook=sent``)."""
        fields: dict[str, Any] = self.__dict__.setdefault("_verdict_fields", {})
        return fields


class ConfigError(MonitoringError):
    """The YAML, the environment or the command line is wrong: a person must fix it.

    Args:
        problems: every problem found, each naming its file and dotted field path.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class ConfigChangedError(ConfigError):
    """A config key that stored history depends on changed after that history was written.

    Args:
        problem: which key changed, from what to what, and what history depends on it.
        action: how to go back, or how to migrate the history safely.
    """

    def __init__(self, problem: str, action: str):
        super().__init__(problem)
        self.action = action


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


class StoreError(MonitoringError):
    """The state store cannot be trusted: damaged, foreign, or missing while history exists.

    Args:
        message: what was found, naming the store.
        action: what to do (check, restore a backup, rebuild).
    """

    exit_code = EXIT_STORE

    def __init__(self, message: str, action: str | None = None):
        super().__init__(message)
        self.action = action or (
            "nothing was changed; run `cml-monitor state check`, then `cml-monitor state restore FILE` "
            "(a backup) or `cml-monitor state rebuild`"
        )


class NoSpaceError(MonitoringError):
    """A write failed because its file system is full; the write was rolled back.

    Args:
        message: what could not be written, and where.
        where: the directory or mount point to free space on.
    """

    exit_code = EXIT_NO_SPACE

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where
        self.action = f"free space on {where}, then re-run; the failed write was rolled back, nothing stored was lost"


class LockedError(MonitoringError):
    """Another process held a lock on a store for longer than the configured wait.

    Args:
        message: which store, and how long this run waited.
        what: the locked store, as a person finds it (a file path or a redacted URL).
    """

    exit_code = EXIT_LOCKED

    def __init__(self, message: str, what: str):
        super().__init__(message)
        self.what = what
        self.action = (
            f"find the process holding {what} (a stuck job, a session, a backup) and let it finish or stop it, "
            "then re-run; nothing was written"
        )


class ContractError(DataError):
    """Retraining data broke the data contract (a column, a rule): nothing was fitted."""

    exit_code = EXIT_CONTRACT
