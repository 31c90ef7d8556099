"""Spark settings: CML's fixed ones for a local connection, and the workspace's own defaults (``spark-defaults.conf`` text).

CML keeps a workspace-wide Spark defaults text (``SetWorkspaceSparkDefault``, one for pushdown
and one without) that every session's Spark starts with, under settings CML fixes itself
(``ReadCMLSparkDefault``). Locally the fixed settings place the connection's warehouse and
catalog in W; the workspace's text (the one without pushdown: local sessions run Spark in their
own engine) applies under them, so it may size the driver or the shuffle but never move a table.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from localcml.datalake.connections import Connection, datalake_dir

DEFAULTS_FILE = "spark-defaults.json"


def fixed(connection: Connection) -> dict[str, str]:
    """The settings a local connection's session always has (where its tables and catalog are)."""
    return {
        "spark.master": connection.master,
        "spark.sql.catalogImplementation": "hive",
        "spark.sql.warehouse.dir": str(connection.warehouse),
        "spark.hadoop.javax.jdo.option.ConnectionURL": f"jdbc:derby:;databaseName={connection.metastore};create=true",
        "spark.driver.extraJavaOptions": f"-Dderby.system.home={connection.directory}",
        "spark.local.dir": str(connection.directory / "scratch"),
        "spark.ui.enabled": "false",
    }


def initial(connection: Connection) -> dict[str, str]:
    """Settings a session starts with unless the workspace defaults say otherwise."""
    return {
        "spark.driver.memory": connection.driver_memory,
        "spark.sql.shuffle.partitions": "4",
        "spark.sql.session.timeZone": "UTC",
    }


def parse(text: str) -> dict[str, str]:
    """``spark-defaults.conf`` text (``key value`` or ``key=value`` per line, ``#`` comments) as a dict."""
    out = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, *value = re.split(r"\s*=\s*|\s+", line, maxsplit=1)
        out[key] = value[0].strip() if value else ""
    return out


def render(settings: dict[str, str]) -> str:
    return "".join(f"{k} {v}\n" for k, v in sorted(settings.items()))


def _path(workspace_dir: str | Path) -> Path:
    return datalake_dir(workspace_dir) / DEFAULTS_FILE


def workspace_defaults(workspace_dir: str | Path, is_pushdown: bool = False) -> str:
    """The workspace's Spark defaults text (empty until one is set)."""
    try:
        return json.loads(_path(workspace_dir).read_text()).get(str(is_pushdown).lower(), "")
    except (OSError, ValueError):
        return ""


def set_workspace_defaults(workspace_dir: str | Path, text: str, is_pushdown: bool = False) -> None:
    path = _path(workspace_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        data = {}
    data[str(is_pushdown).lower()] = text
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, path)


def session_settings(connection: Connection, workspace_dir: str | Path) -> dict[str, str]:
    """Everything a connection's session is built with: initial, then the workspace's defaults, then the fixed ones."""
    return {**initial(connection), **parse(workspace_defaults(workspace_dir)), **fixed(connection)}
