"""``cml.data_v1`` for the local workspace: importable, but it has no data connections to give.

In CML, ``cml.data_v1.get_connection(name)`` returns a connection to a data lake service
(Spark, Impala, Hive) the workspace is set up with. The local workspace has none, so every
function says so by name instead of failing somewhere later.
"""

from __future__ import annotations

from typing import Any, NoReturn

__all__ = ["get_connection", "list_connections"]


class DataConnectionsUnavailable(NotImplementedError):
    """The local CML workspace has no data connections."""


def _unavailable(name: str) -> NoReturn:
    raise DataConnectionsUnavailable(
        f"cml.data_v1.{name}: the local CML workspace has no data connections (no Spark, Impala or Hive "
        "data lake); read your data from files or a database URL in the job instead, or run this code in CML"
    )


def get_connection(*args: Any, **kwargs: Any) -> NoReturn:
    """Raises ``DataConnectionsUnavailable`` (CML: a connection by name)."""
    _unavailable("get_connection")


def list_connections(*args: Any, **kwargs: Any) -> NoReturn:
    """Raises ``DataConnectionsUnavailable`` (CML: the workspace's data connections)."""
    _unavailable("list_connections")


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    _unavailable(name)
