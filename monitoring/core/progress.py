"""Progress of long work: a bar on a terminal, a log line every few percent in CML job logs."""

from __future__ import annotations

import logging
import sys
import threading
from typing import TextIO

from monitoring.core.logs import KV

log = logging.getLogger(__name__)

#: Without a terminal, log progress at most this many times per task (CML job logs stay short).
LOG_STEPS = 4
BAR_WIDTH = 30


class Progress:
    """Counts finished items of one task; thread-safe.

    Args:
        task: what is being counted ("predictions").
        total: how many items are expected.
        stream: where a terminal bar goes (default stderr); a non-terminal stream gets log lines.
    """

    def __init__(self, task: str, total: int, stream: TextIO | None = None):
        self.task = task
        self.total = max(0, int(total))
        self.count = 0
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._next_log = 1

    def advance(self, n: int = 1) -> None:
        with self._lock:
            self.count += n
            if self.total == 0:
                return
            if self.tty:
                filled = BAR_WIDTH * self.count // self.total
                self.stream.write(
                    f"\r{self.task} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.count}/{self.total}"
                )
                self.stream.flush()
            elif self.count * LOG_STEPS >= self._next_log * self.total and self._next_log < LOG_STEPS:
                self._next_log += 1
                log.info("progress %s", KV(task=self.task, done=self.count, total=self.total))

    def done(self) -> None:
        if self.tty and self.total:
            self.stream.write("\n")
            self.stream.flush()
