"""Time as an input: the kernels never read the wall clock themselves.

The local workspace keeps its clock in a file (``WarpClock``) and names it to its engines in
``CML_MONITOR_CLOCK_FILE``; jobs, replicas and the workspace itself read it with ``clock_from_env``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

#: Environment variable naming the local workspace's clock file (absent inside CML).
CLOCK_FILE_ENV = "CML_MONITOR_CLOCK_FILE"


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch."""


class SystemClock:
    """The wall clock: what every job uses inside CML."""

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class WarpClock:
    """Wall clock plus an offset kept in a file, so a local rehearsal can skip ahead in time.

    The local workspace writes ``{"offset_ms": N}``; every local process (jobs, model servers)
    reads it, so all timestamps of one rehearsal agree. Re-read when the file changes.
    """

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._stamp: tuple[int, int] | None = None
        self._offset = 0

    def offset_ms(self) -> int:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return 0
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            self._offset = int(json.loads(self.path.read_text() or "{}").get("offset_ms", 0))
            self._stamp = stamp
        return self._offset

    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms()

    def set_now(self, now_ms: int) -> None:
        """Warp so that ``now_ms()`` returns ``now_ms`` at this instant (atomic write)."""
        offset = int(now_ms) - time.time_ns() // 1_000_000
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"offset_ms": offset}))
        os.replace(tmp, self.path)


def clock_from_env(env: Mapping[str, str] | None = None) -> Clock:
    """The clock a job should use: the local workspace's warp clock if it set one, else the wall."""
    env = os.environ if env is None else env
    path = env.get(CLOCK_FILE_ENV)
    return WarpClock(path) if path else SystemClock()


def iso_ms(ms: int) -> str:
    """ISO 8601 UTC text for a millisecond timestamp, e.g. ``2026-11-23T10:00:00Z``."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.isoformat(timespec="seconds").replace("+00:00", "Z")


def iso_exact(ms: int) -> str:
    """ISO 8601 UTC text to the millisecond, e.g. ``2026-11-23T10:00:09.250Z`` (a watermark, an event time)."""
    dt = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=int(ms))
    return dt.isoformat(timespec="milliseconds").replace("+00:00", "Z")
