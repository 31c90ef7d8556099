"""API errors as grpc-gateway renders them: an HTTP status plus a ``runtimeError`` JSON body."""

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
