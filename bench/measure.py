"""Inside a case's process: resident memory (current and peak, resettable) and the machine's facts."""

from __future__ import annotations

import gc
import os
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

MB = 1024 * 1024


def _status_kb(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {key} line (is this Linux?)")


def rss_mb() -> float:
    """Resident memory of this process now, MB."""
    return _status_kb("VmRSS") / 1024


def peak_rss_mb() -> float:
    """Peak resident memory of this process since start or the last ``reset_peak``, MB."""
    return _status_kb("VmHWM") / 1024


def reset_peak() -> bool:
    """Reset the peak to the current resident size (Linux >= 4.0); False where not allowed."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class Measurement:
    """Wall time of a block and this process's memory around it."""

    seconds: float = 0.0
    rss_before_mb: float = 0.0
    peak_mb: float = 0.0
    peak_reset: bool = False
    load_1m: float = 0.0
    extra: dict = field(default_factory=dict)

    @property
    def peak_extra_mb(self) -> float:
        """Peak above what the process held when the block began (its input, imports)."""
        return max(0.0, self.peak_mb - self.rss_before_mb)

    def to_dict(self) -> dict:
        return {
            "seconds": self.seconds,
            "rss_before_mb": self.rss_before_mb,
            "peak_mb": self.peak_mb,
            "peak_extra_mb": self.peak_extra_mb,
            "peak_reset": self.peak_reset,
            "load_1m": self.load_1m,
            **self.extra,
        }


@contextmanager
def measured() -> Iterator[Measurement]:
    """Time a block; its peak RSS is measured from the block's start when the kernel allows a reset."""
    m = Measurement()
    m.peak_reset = reset_peak()
    m.rss_before_mb = rss_mb()
    start = time.perf_counter()
    yield m
    m.seconds = time.perf_counter() - start
    m.peak_mb = peak_rss_mb()
    m.load_1m = os.getloadavg()[0]  # other work on the machine skews the times: recorded with each step


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    with open("/proc/meminfo") as info:
        for line in info:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    return 0.0


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


def _postgres_version() -> str | None:
    try:
        from tests.pg import find_pg_bin

        pg_bin = find_pg_bin()
        if pg_bin is None:
            return None
        out = subprocess.run(
            [str(pg_bin / "postgres"), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError, ImportError):
        return None


def machine() -> dict:
    """nproc, memory, CPU model, OS, Python, library versions and the date (UTC)."""
    import numpy
    import pandas

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "memory_gb": round(_memory_gb(), 1),
        "cpu": _cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "sqlite": _sqlite_version(),
        "postgresql": _postgres_version(),
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
        "load_1m": os.getloadavg()[0],
    }
