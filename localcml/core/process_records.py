"""Process records: the workspace's own note of a process it started, in ``W/processes/<role>.json``.

A process of the workspace is found by the marker in its environment (``process_table``). A
record finds it again when the marker does not: its environment names another directory (W was
moved or renamed since it started, or an older daemon wrote another spelling) or cannot be read.
A record is trusted only for the process it describes: the same pid, started at the same moment
(clock ticks since boot, in the same boot) and running a command line that holds every string
the record expects. A pid reused by another program is therefore never taken for it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

PROC = Path("/proc")
#: Where a workspace keeps its process records (under W).
RECORDS_DIR = "processes"
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")


@dataclass(frozen=True)
class Found:
    """One live process of the workspace, in its role."""

    pid: int
    ppid: int
    pgid: int
    role: str
    marked: bool = True
    """Found by the marker in its environment (False: only by W's record of it)."""


def read_stat(pid: int) -> tuple[str, int, int, int]:
    """(state, parent pid, process group, start time) of a process, from ``/proc/<pid>/stat``.

    The start time is in clock ticks after boot; ``exec`` does not change it.

    Raises:
        OSError: no such process (or not readable).
        ValueError, IndexError: not a stat line.
    """
    fields = (PROC / str(pid) / "stat").read_bytes().rsplit(b")", 1)[1].split()
    return fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[19])


def _boot_id() -> str:
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def record_path(workspace_dir: str | Path, role: str) -> Path:
    """The record of the process in ``role`` (``replica:<id>:0`` -> ``W/processes/replica_<id>_0.json``)."""
    return Path(workspace_dir) / RECORDS_DIR / f"{role.replace(':', '_').replace('/', '_')}.json"


def write_record(workspace_dir: str | Path, role: str, pid: int, expect: Sequence[str]) -> None:
    """Note that ``pid`` was started in ``role``; its command line will hold every string of ``expect``.

    A process that has already gone is not recorded.
    """
    try:
        start = read_stat(pid)[3]
    except (OSError, ValueError, IndexError):
        return
    path = record_path(workspace_dir, role)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"role": role, "pid": pid, "start": start, "boot": _boot_id(), "expect": list(expect)}))
    os.replace(tmp, path)


def _verified(record: dict) -> Found | None:
    """The live process the record describes, or None when it has gone (or its pid is another's now)."""
    pid = int(record["pid"])
    if record.get("boot") != _boot_id():
        return None
    try:
        state, ppid, pgid, start = read_stat(pid)
        argv = (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (OSError, ValueError, IndexError):
        return None
    if state == "Z" or start != int(record["start"]):
        return None
    if not all(str(part) in argv for part in record["expect"]):
        return None
    return Found(pid, ppid, pgid, str(record["role"]), marked=False)


def read_records(workspace_dir: str | Path) -> tuple[list[Found], list[Path]]:
    """(the live processes W's records describe, the records whose process has gone)."""
    live, stale = [], []
    for path in sorted((Path(workspace_dir) / RECORDS_DIR).glob("*.json")):
        try:
            found = _verified(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError):
            found = None
        if found is None:
            stale.append(path)
        elif found.pid != os.getpid():
            live.append(found)
    return live, stale
