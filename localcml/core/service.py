"""What every emulated CML service shares: its routes (operation -> handler) and the operations it cannot honour.

A service folder has ``urls.py`` with ``OPERATIONS`` (operationId -> handler method name),
``NOT_IMPLEMENTED`` (operationId -> why the local workspace cannot honour it) and ``NOTES``
(operationId -> what differs from CML). ``routes`` joins the services into one table that covers
every operation of the spec: an operation nobody implements answers HTTP 501 naming itself.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from localcml.core.errors import UNIMPLEMENTED, ApiError
from localcml.core.spec import method_name, operations

Handler = Callable[[dict, dict, Any], dict]


@dataclass(frozen=True)
class Routes:
    """One service's routes, read from its ``urls`` module."""

    service: str
    operations: Mapping[str, str]
    not_implemented: Mapping[str, str] = field(default_factory=dict)
    notes: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, service: str, urls: ModuleType) -> Routes:
        return cls(
            service,
            getattr(urls, "OPERATIONS", {}),
            getattr(urls, "NOT_IMPLEMENTED", {}),
            getattr(urls, "NOTES", {}),
        )


def not_implemented(operation_id: str, reason: str) -> Handler:
    """A handler answering HTTP 501 (gRPC UNIMPLEMENTED) that names the operation and says why."""
    message = f"{operation_id} ({method_name(operation_id)}) is not implemented by the local CML workspace: {reason}"

    def handler(path: dict, query: dict, body: Any) -> dict:
        raise ApiError(UNIMPLEMENTED, message)

    handler.__name__ = f"not_implemented_{method_name(operation_id)}"
    return handler


def route_table(services: Iterable[tuple[Routes, object]]) -> dict[str, Handler]:
    """operationId -> handler for every operation of the spec.

    Args:
        services: each service's routes and the object whose methods handle them.

    Raises:
        ValueError: a route names an operation the spec lacks, an operation is claimed twice,
            or a handler method is missing (a mistake in a ``urls`` module).
    """
    known = operations()
    table: dict[str, Handler] = {}
    for routes, handlers in services:
        for op, attr in routes.operations.items():
            if op not in known:
                raise ValueError(f"{routes.service}: {op} is not an operation of the API v2 spec")
            if op in table:
                raise ValueError(f"{routes.service}: {op} is routed twice")
            table[op] = getattr(handlers, attr)
        for op, reason in routes.not_implemented.items():
            if op not in known or op in table:
                raise ValueError(f"{routes.service}: {op} is unknown or also implemented")
            table[op] = not_implemented(op, reason)
    for op in known:
        table.setdefault(op, not_implemented(op, "no local service emulates it"))
    return table
