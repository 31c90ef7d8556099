"""``cml.data_v1`` for the local workspace: ``get_connection(name).get_spark_session()`` over a local warehouse.

In CML, ``cml.data_v1.get_connection(name)`` opens a data connection the workspace defines: a
Spark data lake connection gives ``get_spark_session()``; Impala and Hive connections give
``get_cursor()``, ``get_pandas_dataframe(query)`` and ``get_base_connection()``. Every local
connection is a Spark data lake connection (``localcml.datalake``): its session is a real local
Spark (``pyspark``, ``local[2]``) whose tables live in ``W/datalake/<name>/``. What the local
connections do not have answers ``NotImplementedError`` naming it.
"""

from __future__ import annotations

import os
from typing import Any, NoReturn

from localcml.datalake.connections import WORKSPACE_ENV, Connection, UnknownConnection, connection
from localcml.datalake.session import SparkUnavailable, spark_session

__all__ = ["get_connection", "SparkDataLakeConnection", "UnknownConnection", "SparkUnavailable"]

_SQL_METHODS = ("get_cursor", "get_pandas_dataframe", "get_base_connection")


class DataConnectionsUnavailable(NotImplementedError):
    """What the local CML workspace's data connections do not offer."""


def _workspace() -> str:
    where = os.environ.get(WORKSPACE_ENV)
    if not where:
        raise UnknownConnection(
            [
                f"cml.data_v1: no local CML workspace here ({WORKSPACE_ENV} is unset): run this code in a local "
                'engine (a job, a model, an application) or in a shell after eval "$(cml-monitor local env)"'
            ]
        )
    return where


class SparkDataLakeConnection:
    """A local Spark data lake connection (what CML's ``get_connection`` returns for one)."""

    def __init__(self, defined: Connection, workspace_dir: str, parameters: dict | None = None):
        self.connection = defined
        self.workspace_dir = workspace_dir
        self.parameters = dict(parameters or {})

    @property
    def name(self) -> str:
        return self.connection.name

    def get_spark_session(self) -> Any:
        """The connection's ``SparkSession`` (this process's running one, if it has it).

        Raises:
            SparkUnavailable: pyspark or Java is missing, saying what to install.
        """
        return spark_session(self.connection, self.workspace_dir)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        kind = "CML's Impala and Hive connections have it" if name in _SQL_METHODS else "it is not a connection method"
        raise DataConnectionsUnavailable(
            f"cml.data_v1 connection {self.connection.name!r} has no {name}(): {kind}; every local data connection "
            "is a Spark data lake connection: use get_spark_session() and spark.sql(...)"
        )


def get_connection(connection_name: str, parameters: dict | None = None) -> SparkDataLakeConnection:
    """The local data connection called ``connection_name``.

    Raises:
        UnknownConnection: no local workspace here, or it defines no such name (listing the ones it does).
    """
    where = _workspace()
    return SparkDataLakeConnection(connection(connection_name, where), where, parameters)


def _unavailable(name: str) -> NoReturn:
    raise DataConnectionsUnavailable(
        f"cml.data_v1.{name}: not offered by the local CML workspace; get_connection(name).get_spark_session() is"
    )


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    _unavailable(name)
