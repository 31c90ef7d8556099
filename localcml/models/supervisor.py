"""Replica supervision as Kubernetes does it for a CML replica: a dead replica is restarted with backoff.

Each replica of a deployed deployment has a supervisor thread. When the replica's process
ends (killed, crashed, out of memory) it leaves the rotation at once (the model endpoint sends
requests to the others, or answers 429 ``model.busy`` once no replica was free for the busy
timeout, as CML does) and is started again: the first restart at once, then after 10 s, 20 s,
40 s ... up to 5 minutes, as the kubelet backs off. A replica that fails ``crash_loop`` times in
a row (it exits or is not healthy within the health timeout, each time before it has served for
``stable_s``) is crash-looping: its deployment is marked ``failed`` with the reason in its
``deploy.log``.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from cmlbase.logs import KV
from localcml.core.processes import describe_exit
from localcml.models.pool import Replica, ReplicaPool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RestartPolicy:
    """How dead replicas are restarted.

    Attributes:
        backoff_s: the wait before the second restart in a row; it doubles for each further one.
        max_backoff_s: the longest wait between two restarts.
        crash_loop: consecutive failures after which the deployment is marked failed.
        stable_s: a replica that served this long before it died starts counting failures anew.
    """

    backoff_s: float = 10.0
    max_backoff_s: float = 300.0
    crash_loop: int = 5
    stable_s: float = 600.0

    def delay(self, failures: int) -> float:
        """Seconds to wait before restarting a replica that has failed ``failures`` times in a row."""
        if failures <= 1:
            return 0.0
        return min(self.backoff_s * 2 ** (failures - 2), self.max_backoff_s)


class ReplicaStarter(Protocol):
    """What a supervisor needs from the deployments it watches."""

    def respawn(self, dep_id: str, pool: ReplicaPool, replica: Replica) -> str | None:
        """Start the replica's process again and wait until it is healthy; None, else why not (naming it)."""

    def note(self, dep_id: str, text: str) -> None:
        """Append a line to the deployment's ``deploy.log``."""

    def crash_loop(self, dep_id: str, reason: str) -> None:
        """Mark the deployment failed and stop its replicas."""


class Supervisor:
    """Watches the replicas of live deployments and restarts the dead ones.

    Args:
        policy: backoff and crash-loop limits.
        starter: starts replica processes and records what happened.
    """

    def __init__(self, policy: RestartPolicy, starter: ReplicaStarter):
        self.policy = policy
        self.starter = starter

    def watch(self, dep_id: str, pool: ReplicaPool) -> None:
        """Supervise every replica of ``pool`` until ``pool.stopped`` is set (a dead one is started at once)."""
        for replica in pool.replicas:
            threading.Thread(
                target=self._supervise,
                args=(dep_id, pool, replica),
                daemon=True,
                name=f"replica-{dep_id[:8]}-{replica.index}",
            ).start()

    def _supervise(self, dep_id: str, pool: ReplicaPool, replica: Replica) -> None:
        name = f"replica {replica.index}"
        what = f"{name} is not running"
        while not pool.stopped.is_set():
            if replica.alive and replica.proc is not None:
                code = replica.proc.wait()
                if pool.stopped.is_set():
                    return  # the deployment stopped: the end was the workspace's doing
                pool.down(replica)
                lived = time.monotonic() - replica.started
                replica.failures = 1 if lived >= self.policy.stable_s else replica.failures + 1
                what = f"{name} (pid {replica.proc.pid}) exited with {describe_exit(code)} after {lived:.1f} s"
                log.warning("model replica died %s", KV(deployment=dep_id, replica=replica.index, code=code))
            if replica.failures >= self.policy.crash_loop:
                self.starter.crash_loop(
                    dep_id,
                    f"{what}; it failed {replica.failures} times in a row (crash loop): "
                    f"see replica-{replica.index}.log",
                )
                return
            delay = self.policy.delay(replica.failures)
            self.starter.note(dep_id, f"{what}; restarting it in {delay:g} s")
            if pool.stopped.wait(delay):
                return
            problem = self.starter.respawn(dep_id, pool, replica)
            if pool.stopped.is_set():
                return
            if problem is None:
                self.starter.note(dep_id, f"{name} serves again (pid {replica.proc.pid})")
            else:
                replica.failures += 1
                what = problem
