"""The process table as a chaos test sees it: the processes of a workspace, and real SIGKILLs at chosen moments.

Read straight from ``/proc`` (not through the workspace's own code, which is under test): a
process belongs to workspace W when its environment holds ``CML_MONITOR_WORKSPACE=W`` and a
``CML_MONITOR_PROCESS`` role, the marker the workspace puts on everything it starts.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.waiting import wait_for

#: How long a process may take to die after SIGKILL, or to appear after it was started.
PROCESS_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Proc:
    """One live process: its ids and its role in the workspace (``run:<id>``, ``replica:<id>:<n>``, ...)."""

    pid: int
    ppid: int
    pgid: int
    role: str


def _read(pid: int) -> Proc | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if stat[0] == b"Z":
        return None
    env = dict(item.split(b"=", 1) for item in environ if b"=" in item)
    role = env.get(b"CML_MONITOR_PROCESS")
    if role is None:
        return None
    return Proc(pid, int(stat[1]), int(stat[2]), role.decode())


def workspace_processes(workspace_dir: str | Path, prefix: str = "") -> list[Proc]:
    """Every live process the workspace in W started (the daemon too), whose role starts with ``prefix``."""
    wanted = str(Path(workspace_dir).resolve()).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry.name}/environ").read_bytes()
        except OSError:
            continue
        if b"CML_MONITOR_WORKSPACE=" + wanted + b"\0" not in env + b"\0":
            continue
        proc = _read(int(entry.name))
        if proc is not None and proc.role.startswith(prefix):
            found.append(proc)
    return found


def leaders(workspace_dir: str | Path, prefix: str = "") -> dict[str, Proc]:
    """Role -> the process started in that role (the leader of its own process group)."""
    return {p.role: p for p in workspace_processes(workspace_dir, prefix) if p.pid == p.pgid}


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except OSError:
        return False
    return stat[0] != b"Z"


def sigkill_group(pgid: int, what: str = "") -> None:
    """SIGKILL a whole process group, then wait (bounded) until every member has gone."""
    members = [p.pid for p in _group(pgid)]
    os.killpg(pgid, signal.SIGKILL)
    wait_gone(members, what or f"process group {pgid}")


def _group(pgid: int) -> list[Proc]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = Path(f"/proc/{entry.name}/stat").read_bytes().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(stat[2]) == pgid and stat[0] != b"Z":
                out.append(Proc(int(entry.name), int(stat[1]), pgid, ""))
    return out


def wait_gone(pids: list[int], what: str, timeout: float = PROCESS_TIMEOUT_S) -> None:
    """Wait (bounded) until none of ``pids`` runs."""
    wait_for(lambda: not any(alive(pid) for pid in pids), f"{what} to die", timeout)


def kill_when(check: Callable[[], Any], pgid: Callable[[Any], int], what: str, timeout: float = 60.0) -> Any:
    """SIGKILL a process group at a chosen moment: as soon as ``check()`` holds (a bounded poll).

    Args:
        check: names the moment (e.g. "the run is ENGINE_RUNNING"); its truthy value is passed on.
        pgid: the group to kill, from that value.
        what: the moment, for the failure message.

    Returns:
        What ``check`` returned.
    """
    value = wait_for(check, what, timeout)
    sigkill_group(pgid(value), what)
    return value


def assert_no_processes(workspace_dir: str | Path, prefix: str = "") -> None:
    """No process of W (with a role starting with ``prefix``) runs: nothing was orphaned."""
    left = workspace_processes(workspace_dir, prefix)
    assert left == [], f"processes of {workspace_dir} still running: {left}"
