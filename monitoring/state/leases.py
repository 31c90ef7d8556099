"""Leases in the state store: one holder at a time for a named piece of work, across processes and hosts.

A lease is a row (name, holder, expiry). Taking it is one atomic upsert that succeeds only when
the row is free, expired or already ours; a held lease is renewed by a heartbeat thread, so a
long run keeps it and a killed run (SIGKILL, a lost engine) loses it after ``ttl``. Expiry uses
the wall clock of the machines involved (never the workspace's warped clock): hosts must agree
on the time to within a fraction of the ttl.
"""

from __future__ import annotations

import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cmlbase.clock import iso_ms
from monitoring.core.db import Database
from monitoring.core.errors import BusyError, MonitoringError
from monitoring.core.logs import KV

log = logging.getLogger(__name__)

#: A lease not renewed for this long is free for the next run (a killed holder frees it so).
LEASE_TTL_MS = 120_000
#: Seconds between two tries while another run holds the lease.
LEASE_POLL_S = 0.5


def holder_name(run_id: str) -> str:
    """A holder id unique to this process: the run, the host, the pid and a random part."""
    return f"{run_id}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def holder_is_dead(holder: str) -> bool:
    """Whether ``holder`` names a process of this host that no longer exists (killed, crashed).

    Only this host's processes can be asked; a holder elsewhere (another CML engine) is never
    called dead here: its lease frees itself when the heartbeat stops.
    """
    match = re.fullmatch(r".*@(?P<host>[^@:]+):(?P<pid>\d+):[0-9a-f]+", holder)
    if match is None or match["host"] != socket.gethostname() or int(match["pid"]) == os.getpid():
        return False
    try:
        os.kill(int(match["pid"]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@dataclass(frozen=True)
class LeaseRow:
    name: str
    holder: str
    acquired_ms: int
    expires_ms: int


class Leases:
    """The leases of one state store.

    Args:
        db: the store's database.
        wall: seconds since the epoch (injectable, so tests expire leases without waiting).
    """

    def __init__(self, db: Database, wall: Callable[[], float] = time.time):
        self.db = db
        self.wall = wall

    def _now(self) -> int:
        return int(self.wall() * 1000)

    def try_acquire(self, name: str, holder: str, ttl_ms: int = LEASE_TTL_MS) -> bool:
        """Take the lease if it is free, expired or already ours. Returns: whether we hold it now."""
        now = self._now()
        cur = self.db.execute(
            "INSERT INTO leases (name, holder, acquired_ms, expires_ms) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_ms = excluded.acquired_ms, "
            "expires_ms = excluded.expires_ms WHERE leases.expires_ms <= excluded.acquired_ms "
            "OR leases.holder = excluded.holder",
            (name, holder, now, now + int(ttl_ms)),
        )
        return bool(cur.rowcount == 1)

    def renew(self, name: str, holder: str, ttl_ms: int = LEASE_TTL_MS) -> bool:
        """Push the expiry on while we still hold the lease. Returns: False when it was lost."""
        now = self._now()
        cur = self.db.execute(
            "UPDATE leases SET expires_ms = ? WHERE name = ? AND holder = ? AND expires_ms > ?",
            (now + int(ttl_ms), name, holder, now),
        )
        return bool(cur.rowcount == 1)

    def take_from_dead(self, name: str, holder: str, ttl_ms: int = LEASE_TTL_MS) -> bool:
        """Take the lease from a holder whose process died on this host. Returns: whether we hold it now."""
        row = self.current(name)
        if row is None or not holder_is_dead(row.holder):
            return False
        now = self._now()
        cur = self.db.execute(
            "UPDATE leases SET holder = ?, acquired_ms = ?, expires_ms = ? WHERE name = ? AND holder = ?",
            (holder, now, now + int(ttl_ms), name, row.holder),
        )
        if cur.rowcount == 1:
            log.warning("lease taken from a holder that died %s", KV(lease=name, dead=row.holder))
        return bool(cur.rowcount == 1)

    def release(self, name: str, holder: str) -> None:
        """Free the lease if we hold it (a lease taken over after expiry is left to its new holder)."""
        self.db.execute("DELETE FROM leases WHERE name = ? AND holder = ?", (name, holder))

    def current(self, name: str) -> LeaseRow | None:
        """The lease row, held or expired; None when nobody took it."""
        row = self.db.query_one("SELECT name, holder, acquired_ms, expires_ms FROM leases WHERE name = ?", (name,))
        return None if row is None else LeaseRow(row[0], row[1], int(row[2]), int(row[3]))

    def held_by(self, name: str, holder: str) -> bool:
        row = self.current(name)
        return row is not None and row.holder == holder and row.expires_ms > self._now()

    def all(self) -> list[LeaseRow]:
        rows = self.db.query("SELECT name, holder, acquired_ms, expires_ms FROM leases ORDER BY name")
        return [LeaseRow(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def hold(
        self,
        name: str,
        holder: str,
        *,
        wait_s: float,
        sleep: Callable[[float], None] = time.sleep,
        ttl_ms: int = LEASE_TTL_MS,
        what: str = "this work",
    ) -> Lease:
        """Take the lease, waiting up to ``wait_s`` for its holder; use the result as a context manager.

        Raises:
            BusyError: another holder kept it for the whole wait (names the holder and its expiry).
        """
        polls = max(1, math.ceil(wait_s / LEASE_POLL_S))
        for attempt in range(polls + 1):
            if self.try_acquire(name, holder, ttl_ms) or self.take_from_dead(name, holder, ttl_ms):
                return Lease(self, name, holder, ttl_ms)
            if attempt < polls:
                sleep(LEASE_POLL_S)
        other = self.current(name)
        by = f"run {other.holder} (lease until {iso_ms(other.expires_ms)})" if other else "another run"
        raise BusyError(f"{what} is being done by {by}; this run waited {wait_s:g}s and did nothing")


class Lease:
    """A held lease: renewed in the background until released (``with`` releases it)."""

    def __init__(self, leases: Leases, name: str, holder: str, ttl_ms: int):
        self.leases, self.name, self.holder, self.ttl_ms = leases, name, holder, ttl_ms
        self._stop = threading.Event()
        self.lost = False
        self._beat = threading.Thread(target=self._heartbeat, name=f"lease {name}", daemon=True)
        self._beat.start()

    def _heartbeat(self) -> None:
        interval = self.ttl_ms / 4000
        while not self._stop.wait(interval):
            try:
                if not self.leases.renew(self.name, self.holder, self.ttl_ms):
                    self.lost = True
                    log.warning("lease lost %s", KV(lease=self.name, holder=self.holder))
                    return
            except MonitoringError as exc:  # a locked or full store: try again at the next beat
                log.warning("lease not renewed, retrying %s", KV(lease=self.name, error=str(exc)))

    def still_held(self) -> bool:
        """Whether the lease is ours right now (asks the store; the heartbeat may have lost it)."""
        return not self.lost and self.leases.held_by(self.name, self.holder)

    def release(self) -> None:
        self._stop.set()
        self._beat.join()
        self.leases.release(self.name, self.holder)

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
