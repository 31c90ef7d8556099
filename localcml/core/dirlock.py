"""One workspace per directory: the serving workspace holds an exclusive lock on ``W/daemon.lock``.

The lock is an ``flock`` on an open file, so it ends with its holder, even one killed with
SIGKILL: a restarted daemon never waits for a dead one, and two live ones never share W (two
schedulers would fire every job twice). Child processes do not inherit it (the workspace starts
them with ``close_fds``).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from localcml.core.errors import ConfigError

LOCK_FILE = "daemon.lock"


class WorkspaceBusy(ConfigError):
    """Another live local workspace serves this directory."""


class DirectoryLock:
    """The exclusive lock of a workspace directory.

    Args:
        workspace_dir: W.
    """

    def __init__(self, workspace_dir: str | Path):
        self.path = Path(workspace_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        """Take the lock, or fail at once.

        Raises:
            WorkspaceBusy: another process holds it (its pid is named).
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WorkspaceBusy(
                f"{self.path.parent}: another local workspace (pid {holder}) serves this directory; "
                "stop it first (`cml-monitor local down`) or choose another platform.local.workspace_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the file ends the flock
            self._fd = None

    @staticmethod
    def held(workspace_dir: str | Path) -> bool:
        """Whether some live process holds W's lock now (probing it, without keeping it)."""
        path = Path(workspace_dir) / LOCK_FILE
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False
