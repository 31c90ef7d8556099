"""Gates: a real process (a job script, a build check, a replica loading its model) waits at one until a test opens it.

A gate is a FIFO: ``open(path).read()`` blocks until a writer opens and closes it. Code under
test reads ``gate_code(path)``; the test lets the current readers through (``release``) or
opens the gate for good (``open``: the FIFO becomes a plain file, which never blocks), or
closes it again (``close``) so that the next start of a process waits again.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from tests.chaos.processes import PROCESS_TIMEOUT_S


def gate_code(path: Path) -> str:
    """Python statements that wait at the gate at ``path`` (for a job script or a model file)."""
    return f"with open({str(path)!r}) as _gate:\n    _gate.read()\n"


class Gate:
    """A FIFO at ``path`` (closed: readers wait)."""

    def __init__(self, path: Path, closed: bool = True):
        self.path = path
        self.close() if closed else self.open()

    def close(self) -> None:
        """From now on, a process reaching the gate waits (a process already past it is not affected)."""
        self.path.unlink(missing_ok=True)
        os.mkfifo(self.path)

    def release(self, timeout: float = PROCESS_TIMEOUT_S) -> None:
        """Let the processes waiting at the gate through; waits (bounded) until one is there."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:  # ENXIO: no reader yet; a real process is on its way
                if exc.errno != errno.ENXIO or time.monotonic() > deadline:
                    raise AssertionError(f"no process reached the gate {self.path} within {timeout:g} s") from exc
                time.sleep(0.05)
        os.write(fd, b"go")
        os.close(fd)

    def open(self) -> None:
        """Let every process through, now and later (those waiting now are released first)."""
        if self.path.is_fifo():
            self._release_waiting()
        self.path.unlink(missing_ok=True)
        self.path.write_text("open")

    def _release_waiting(self) -> None:
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return  # nobody waits
        os.write(fd, b"go")
        os.close(fd)
