"""The replicas of a live deployment: one request at a time each; a dead one is out of rotation until it serves again."""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from localcml.core.processes import Adopted


@dataclass
class Replica:
    """One model server process of a deployment (``proc`` is None until a restarted daemon starts it).

    Attributes:
        alive: in rotation (its process serves); False while it is dead or being restarted.
        started: ``time.monotonic()`` when it last started serving.
        failures: its consecutive failed starts or short lives (see ``RestartPolicy``).
    """

    index: int
    proc: subprocess.Popen | Adopted | None
    ready_file: Path
    port: int | None = None
    busy: bool = False
    alive: bool = True
    started: float = field(default_factory=time.monotonic)
    failures: int = 0


@dataclass
class ReplicaPool:
    """The replicas of one live deployment; ``stopped`` is set once it no longer serves (its supervisors end)."""

    deployment_id: str
    replicas: list[Replica]
    cond: threading.Condition = field(default_factory=threading.Condition)
    stopped: threading.Event = field(default_factory=threading.Event)

    def acquire(self, timeout: float) -> Replica | None:
        """A free live replica (marked busy), waiting up to ``timeout`` seconds; None if none frees up."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for replica in self.replicas:
                    if replica.alive and not replica.busy:
                        replica.busy = True
                        return replica
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)

    def release(self, replica: Replica) -> None:
        with self.cond:
            replica.busy = False
            self.cond.notify()

    def down(self, replica: Replica) -> None:
        """Take a dead replica out of rotation."""
        with self.cond:
            replica.alive = False

    def up(self, replica: Replica, port: int) -> None:
        """Put a restarted replica (its new process already in ``replica.proc``) back in rotation."""
        with self.cond:
            replica.port, replica.alive, replica.started = port, True, time.monotonic()
            self.cond.notify_all()

    def restarting(self) -> int:
        """How many replicas are out of rotation."""
        with self.cond:
            return sum(not r.alive for r in self.replicas)


def healthy(port: int) -> bool:
    """Whether the replica on ``port`` answers ``GET /health`` with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False
