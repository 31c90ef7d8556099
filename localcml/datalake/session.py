"""A local connection's Spark session: ``pyspark`` on this machine's Java, over the connection's warehouse and catalog."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from localcml.core.errors import ConfigError
from localcml.datalake.connections import Connection
from localcml.datalake.settings import session_settings


class SparkUnavailable(ConfigError):
    """The Spark add-on cannot run here: ``pyspark`` or Java is missing."""


def _java() -> str | None:
    home = os.environ.get("JAVA_HOME")
    if home and Path(home, "bin", "java").is_file():
        return str(Path(home, "bin", "java"))
    return shutil.which("java")


def spark_session(connection: Connection, workspace_dir: str | Path) -> Any:
    """``SparkSession`` of ``connection`` (the running one when this process already has it).

    Raises:
        SparkUnavailable: ``pyspark`` is not installed or no Java is found (saying what to install).
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise SparkUnavailable(
            [
                f"data connection {connection.name!r}: pyspark is not installed in this runtime "
                "(pip install 'cml-monitor[spark]'; in CML, add the Spark runtime add-on to the job)"
            ]
        ) from None
    if _java() is None:
        raise SparkUnavailable(
            [
                f"data connection {connection.name!r}: no Java found (neither JAVA_HOME nor java on PATH); "
                "install a Java 17 runtime (Debian: apt-get install openjdk-17-jre-headless)"
            ]
        )
    connection.warehouse.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.appName(f"cml-local-{connection.name}")
    for key, value in session_settings(connection, workspace_dir).items():
        builder = builder.config(key, value)
    session = builder.enableHiveSupport().getOrCreate()
    atexit.register(stop_jvm)
    return session


def stop_jvm() -> None:
    """Stop this process's Spark and its JVM, and wait for the JVM to end (an engine leaves none behind).

    pyspark's JVM only notices that its Python process is gone some time after it ended; in CML the
    engine's container goes with it, so locally the JVM ends with the engine instead.
    """
    from pyspark import SparkContext

    if SparkContext._active_spark_context is not None:
        SparkContext._active_spark_context.stop()
    gateway = SparkContext._gateway
    if gateway is None:
        return
    process = getattr(gateway, "proc", None)
    gateway.shutdown()
    gateway.close()
    SparkContext._gateway = None
    SparkContext._jvm = None
    if process is not None:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdin is not None:
            process.stdin.close()
