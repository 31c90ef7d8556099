"""The workspace's data connections: each name is a Spark data lake with its own warehouse and catalog in ``W/datalake``.

In CML an administrator defines data connections (a Spark data lake, Impala, Hive) and code opens
one by name with ``cml.data_v1.get_connection(name)``. Locally each configured name is a Spark
data lake connection: its tables live under ``W/datalake/<name>/warehouse`` and its catalog is an
embedded Derby metastore in ``W/datalake/<name>/metastore_db``, so a table one job writes is there
for the next job (jobs of a chain run one after the other; one engine at a time may hold a
connection's catalog open).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from localcml.core.errors import ConfigError

#: The folder of W holding every connection's warehouse and catalog, and the Spark settings.
DATALAKE_DIR = "datalake"
CONNECTIONS_FILE = "connections.json"
#: The connection a workspace defines when it is given no names.
DEFAULT_CONNECTION = "local-spark"
#: Spark master of a local connection: two local cores.
DEFAULT_MASTER = "local[2]"
#: The Spark driver's heap: the JVM of one engine stays bounded (the workspace Spark settings may change it).
DEFAULT_DRIVER_MEMORY = "1g"
#: The variable that names W in every local engine.
WORKSPACE_ENV = "CML_MONITOR_WORKSPACE"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class UnknownConnection(ConfigError):
    """No data connection of that name is defined."""


@dataclass(frozen=True)
class Connection:
    """One Spark data lake connection of the local workspace.

    Attributes:
        name: the name code passes to ``get_connection``.
        directory: ``W/datalake/<name>``: its warehouse, catalog and scratch space.
        master: the Spark master URL (``local[2]``).
        driver_memory: the Spark driver's heap (``1g``).
    """

    name: str
    directory: Path
    master: str = DEFAULT_MASTER
    driver_memory: str = DEFAULT_DRIVER_MEMORY

    @property
    def warehouse(self) -> Path:
        return self.directory / "warehouse"

    @property
    def metastore(self) -> Path:
        return self.directory / "metastore_db"

    def public(self) -> dict:
        """What ``connections.json`` holds for it."""
        return {"name": self.name, "type": "SPARK", "master": self.master, "driver_memory": self.driver_memory}


def datalake_dir(workspace_dir: str | Path) -> Path:
    return Path(workspace_dir).resolve() / DATALAKE_DIR


def check_name(name: str) -> str:
    """``name`` if it can name a connection (letters, digits, ``.``, ``_``, ``-``; up to 64).

    Raises:
        ConfigError: naming it.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            [
                f"data connection name {name!r}: expected letters, digits, '.', '_' or '-' (up to 64, not starting with a sign)"
            ]
        )
    return name


def define(
    workspace_dir: str | Path,
    names: tuple[str, ...] | list[str] = (DEFAULT_CONNECTION,),
    *,
    master: str = DEFAULT_MASTER,
    driver_memory: str = DEFAULT_DRIVER_MEMORY,
) -> list[Connection]:
    """Write ``W/datalake/connections.json`` defining ``names`` (the first is the default); returns them.

    Raises:
        ConfigError: a name that cannot name a connection, or a name given twice.
    """
    if not names:
        raise ConfigError(["data connections: at least one name is needed"])
    for name in names:
        check_name(name)
    twice = sorted({n for n in names if list(names).count(n) > 1})
    if twice:
        raise ConfigError([f"data connection name {twice[0]!r} is given twice"])
    root = datalake_dir(workspace_dir)
    root.mkdir(parents=True, exist_ok=True)
    out = [Connection(n, root / n, master, driver_memory) for n in names]
    tmp = root / f".{CONNECTIONS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"default": names[0], "connections": [c.public() for c in out]}, indent=1))
    os.replace(tmp, root / CONNECTIONS_FILE)
    return out


def defined(workspace_dir: str | Path) -> list[Connection]:
    """The connections W defines (the default one alone when W has no ``connections.json``).

    Raises:
        ConfigError: ``connections.json`` is not what ``define`` writes (names the file).
    """
    root = datalake_dir(workspace_dir)
    path = root / CONNECTIONS_FILE
    if not path.is_file():
        return [Connection(DEFAULT_CONNECTION, root / DEFAULT_CONNECTION)]
    try:
        entries = json.loads(path.read_text())["connections"]
        return [
            Connection(
                check_name(e["name"]),
                root / e["name"],
                e.get("master", DEFAULT_MASTER),
                e.get("driver_memory", DEFAULT_DRIVER_MEMORY),
            )
            for e in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError([f"{path}: not a data connections file ({type(exc).__name__}: {exc})"]) from None


def connection(name: str, workspace_dir: str | Path) -> Connection:
    """The connection called ``name``.

    Raises:
        UnknownConnection: no such name (the message lists the names W defines).
    """
    found = {c.name: c for c in defined(workspace_dir)}
    if name not in found:
        raise UnknownConnection(
            [
                f"data connection {name!r} is not defined in the local workspace {Path(workspace_dir).resolve()}; "
                f"defined: {', '.join(sorted(found))} (python -m localcml.daemon --data-connection NAME defines more)"
            ]
        )
    return found[name]
