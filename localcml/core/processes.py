"""Workspace processes: each in its own process group, marked in its environment, followed after a restart.

Every process the workspace starts (a job run's engine, a build check, a model replica, an
application, the daemon itself) runs in a new session, so a stop reaches whatever it spawned,
and carries two variables: ``CML_MONITOR_WORKSPACE`` (W) and ``CML_MONITOR_PROCESS`` (its role:
``run:<id>``, ``build:<id>``, ``replica:<deployment id>:<index>``, ``app:<id>``, ``daemon``).
Processes it spawns inherit both. A restarted daemon finds the processes of the previous one
through that marker (``localcml.core.process_table``) and follows them with ``Adopted``; an
engine reports its exit status in an exit file, since only a parent can read it otherwise.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

#: The workspace directory W of a process the workspace started (also set in every engine).
WORKSPACE_ENV = "CML_MONITOR_WORKSPACE"
#: The role of a process the workspace started: ``run:<id>``, ``replica:<id>:<n>``, ``app:<id>``, ...
ROLE_ENV = "CML_MONITOR_PROCESS"
#: Where an engine writes ``{"code": N}`` when its script ends (popped before the script runs).
EXIT_FILE_ENV = "CML_MONITOR_EXIT_FILE"
#: The exit status of an adopted process that ended without writing its exit file (it was killed).
EXIT_UNKNOWN = -1000
POLL_SECONDS = 0.1


def marker(workspace_dir: str | Path, role: str) -> dict[str, str]:
    """The variables that mark a process as the workspace's, in ``role``."""
    return {WORKSPACE_ENV: str(Path(workspace_dir).resolve()), ROLE_ENV: role}


def spawn(argv: Sequence[str], *, cwd: str | Path, env: Mapping[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``argv`` in a new session (its own process group) with output appended to ``log_path``.

    Raises:
        OSError: the program cannot be started (its log is created all the same).
    """
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen | Adopted, sig: int = signal.SIGKILL) -> None:
    """Signal the process group started for ``proc`` (the engine and anything it spawned)."""
    signal_group(proc.pid, sig)


def signal_group(pgid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process group; one that has already gone is no error. Never this process's own group."""
    if pgid <= 1 or pgid == os.getpgrp():
        return
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen | Adopted, grace_s: float) -> None:
    """SIGTERM the group, wait up to ``grace_s`` seconds, then SIGKILL it; reaps the process."""
    if proc.poll() is None:
        kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()


def write_exit(path: str | Path, record: dict) -> None:
    """Write an exit record (``{"code": N}``, or ``{"stopped": why}``) atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)


def read_exit(path: str | Path | None) -> dict | None:
    """The exit record at ``path``, or None when there is none (or it is unreadable)."""
    if path is None:
        return None
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def describe_exit(code: int | None) -> str:
    """``exit code 3``, ``signal SIGKILL`` or ``an unknown status`` (for logs a person reads)."""
    if code is None or code == EXIT_UNKNOWN:
        return "an unknown status (it left no exit record: killed, or ended by os._exit)"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return f"signal {name}"
    return f"exit code {code}"


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has ended)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


class Adopted:
    """A process a previous daemon started, followed like a ``Popen`` (``pid``, ``poll``, ``wait``).

    Its end is seen through a pidfd (Linux 5.3+; else by polling ``/proc``); its exit status
    is read from its exit file, or is ``EXIT_UNKNOWN`` when it left none.

    Args:
        pid: the process (the leader of its own process group).
        exit_file: where the process writes its exit record, if it does.

    Raises:
        ProcessLookupError: the process has already gone.
    """

    def __init__(self, pid: int, exit_file: str | Path | None = None):
        self.pid = pid
        self.exit_file = exit_file
        self.returncode: int | None = None
        self._lock = threading.Lock()
        try:
            self._fd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            raise
        except (AttributeError, OSError):  # no pidfd on this system: poll /proc instead
            self._fd = None
            if not _running(pid):
                raise ProcessLookupError(pid) from None

    def _ended(self, timeout: float | None) -> bool:
        if self._fd is not None:
            return bool(select.select([self._fd], [], [], timeout)[0])
        deadline = None if timeout is None else time.monotonic() + timeout
        while _running(self.pid):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)  # no pidfd: a real process is watched at a short interval
        return True

    def _finish(self) -> None:
        with self._lock:
            if self.returncode is not None:
                return
            record = read_exit(self.exit_file) or {}
            code = record.get("code")
            self.returncode = code if isinstance(code, int) else EXIT_UNKNOWN

    def __del__(self) -> None:
        # closed only here: another thread may still be selecting on it when the process ends
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)

    def poll(self) -> int | None:
        """The exit status once the process has ended, else None."""
        if self.returncode is None and self._ended(0):
            self._finish()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the end of the process; returns its exit status.

        Raises:
            subprocess.TimeoutExpired: it still runs after ``timeout`` seconds.
        """
        if self.returncode is None:
            if not self._ended(timeout):
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout or 0)
            self._finish()
        return self.returncode  # type: ignore[return-value]
