"""The processes a workspace started, found in the system's process table by the marker in their environment.

A restarted daemon reads the table once (``ProcessTable.scan(W)``); each service claims the
roles it still wants (a run it adopts, the replicas of a deployment that keeps serving) and
whatever no one claimed is killed, so nothing of an earlier daemon outlives it unobserved.
``local down`` uses the same table to stop what a crashed daemon left behind. The table also
holds the processes that W's records describe (``process_records``: checked by pid, start time
and command line) when their environment does not name W; those are never adopted, only stopped.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

from cmlbase.logs import KV
from localcml.core.process_records import Found, read_records, read_stat
from localcml.core.processes import ROLE_ENV, WORKSPACE_ENV, signal_group

log = logging.getLogger(__name__)

PROC = Path("/proc")


def _environ(pid: int) -> dict[bytes, bytes]:
    raw = (PROC / str(pid) / "environ").read_bytes()
    return dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)


def scan_processes(workspace_dir: str | Path) -> list[Found]:
    """Every live process (not a zombie, not this one) marked as started by the workspace in W.

    Processes of other users are not readable and are never the workspace's.
    """
    wanted = str(Path(workspace_dir).resolve()).encode()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            env = _environ(pid)
            if env.get(WORKSPACE_ENV.encode()) != wanted or ROLE_ENV.encode() not in env:
                continue
            state, ppid, pgid, _start = read_stat(pid)
        except (OSError, ValueError, IndexError):  # gone meanwhile, or not ours to read
            continue
        if state != "Z":
            found.append(Found(pid, ppid, pgid, env[ROLE_ENV.encode()].decode(errors="replace")))
    return found


class ProcessTable:
    """The workspace's live processes at one moment, by role.

    Args:
        processes: what ``scan_processes`` found (and W's records).
        stale_records: records of processes that have gone.
    """

    def __init__(self, processes: list[Found], stale_records: list[Path] | None = None):
        self.processes = processes
        self.stale_records = stale_records or []
        self._claimed: set[str] = set()

    @classmethod
    def scan(cls, workspace_dir: str | Path) -> ProcessTable:
        """The processes marked as W's, and those W's records describe (unmarked: moved W, say)."""
        found = scan_processes(workspace_dir)
        live, stale = read_records(workspace_dir)
        marked = {p.pid for p in found}
        found += [r for r in live if r.pid not in marked]
        return cls(found, stale)

    def of(self, role: str) -> list[Found]:
        return [p for p in self.processes if p.role == role]

    def roles(self, prefix: str = "") -> list[str]:
        """The roles present (starting with ``prefix``), each once, in the order found."""
        return list(dict.fromkeys(p.role for p in self.processes if p.role.startswith(prefix)))

    def top(self, role: str) -> Found | None:
        """The process that was started in ``role`` (not one it spawned), if it still runs."""
        members = self.of(role)
        pids = {p.pid for p in members}
        tops = [p for p in members if p.ppid not in pids and p.pid == p.pgid]
        return min(tops, key=lambda p: p.pid) if tops else None

    def claim(self, role: str) -> Found | None:
        """Keep the processes of ``role`` (they are adopted); returns its top process, if it runs."""
        self._claimed.add(role)
        return self.top(role)

    def kill(self, role: str, sig: int = signal.SIGKILL) -> list[int]:
        """Signal every process group holding a process of ``role``; returns the groups signalled."""
        self._claimed.add(role)
        groups = sorted({p.pgid for p in self.of(role)})
        for pgid in groups:
            signal_group(pgid, sig)
        return groups

    def kill_unclaimed(self) -> list[Found]:
        """SIGKILL the groups of every process no service claimed (left over from an earlier daemon)."""
        strays = [p for p in self.processes if p.role not in self._claimed and p.role != "daemon"]
        for pgid in sorted({p.pgid for p in strays}):
            signal_group(pgid)
        for stray in strays:
            log.warning("stray process killed %s", KV(pid=stray.pid, role=stray.role, marked=stray.marked))
        return strays

    def forget_stale(self) -> None:
        """Remove the records of processes that have gone."""
        for path in self.stale_records:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
