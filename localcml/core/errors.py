"""The workspace's errors: API errors as grpc-gateway renders them, and what its functions raise to a caller.

An ``ApiError`` is an answer of the local API (an HTTP status plus a ``runtimeError`` JSON body).
A ``WorkspaceError`` is raised to a Python caller of the workspace (its commands, a test, the
library's activation point, which turns each into the library's error of the same name, message
and exit code).
"""

from __future__ import annotations

import json

# gRPC status codes (google.rpc.Code) and the HTTP status grpc-gateway maps each to.
INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS, PERMISSION_DENIED = 3, 5, 6, 7
FAILED_PRECONDITION, UNIMPLEMENTED, INTERNAL, UNAUTHENTICATED = 9, 12, 13, 16
HTTP_STATUS = {
    INVALID_ARGUMENT: 400,
    NOT_FOUND: 404,
    ALREADY_EXISTS: 409,
    PERMISSION_DENIED: 403,
    FAILED_PRECONDITION: 400,
    UNIMPLEMENTED: 501,
    INTERNAL: 500,
    UNAUTHENTICATED: 401,
}


class ApiError(Exception):
    """An error the local API returns to its caller.

    Args:
        code: the gRPC status code (the HTTP status follows grpc-gateway's mapping).
        message: what was wrong, naming the object or field.
    """

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def body(self) -> bytes:
        """The ``runtimeError`` JSON: ``{"error", "code", "message", "details"}``."""
        return json.dumps({"error": self.message, "code": self.code, "message": self.message, "details": []}).encode(
            "utf-8"
        )


def invalid(message: str) -> ApiError:
    return ApiError(INVALID_ARGUMENT, message)


def not_found(kind: str, ident: str) -> ApiError:
    return ApiError(NOT_FOUND, f"{kind} {ident!r} not found")


def precondition(message: str) -> ApiError:
    return ApiError(FAILED_PRECONDITION, message)


#: Exit codes of the workspace's commands, by cause: the numbers ``cml-monitor`` documents for the same causes.
EXIT_INTERNAL, EXIT_CONFIG, EXIT_PLATFORM, EXIT_NO_SPACE = 1, 2, 3, 8


class WorkspaceError(Exception):
    """Base of every error the workspace raises on purpose to a Python caller.

    ``action``, when set, is what a person should do about this very error.
    """

    exit_code = EXIT_INTERNAL
    action: str | None = None


class ConfigError(WorkspaceError):
    """An argument, a file or the environment is wrong: a person must fix it.

    Args:
        problems: every problem found, each naming its file, field or variable.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class PlatformError(WorkspaceError):
    """The workspace cannot be reached or did not come up: its daemon is not running, or failed to start."""

    exit_code = EXIT_PLATFORM


class NoSpaceError(WorkspaceError):
    """A write failed because its file system (or database server's disk) is full; nothing was written.

    Args:
        message: what could not be written, and where.
        where: the directory, mount point or server to free space on.
    """

    exit_code = EXIT_NO_SPACE

    def __init__(self, message: str, where: str):
        super().__init__(message)
        self.where = where
        self.action = f"free space on {where}, then re-run; the failed write was rolled back, nothing stored was lost"
