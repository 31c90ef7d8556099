"""Engine processes: each in its own process group, so a stop reaches whatever it spawned."""

from __future__ import annotations

import os
import signal
import subprocess


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group started for ``proc`` (the engine and anything it spawned)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the group, wait up to ``grace_s`` seconds, then SIGKILL it; reaps the process."""
    if proc.poll() is None:
        kill_group(proc, signal.SIGTERM)
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        proc.wait()
