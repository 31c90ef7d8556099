"""Leases in the state store: one holder at a time across real processes; expiry; a dead holder's lease is freed."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys

import pytest

from monitoring.core.errors import EXIT_BUSY, BusyError
from monitoring.state.leases import LEASE_POLL_S, Leases, holder_is_dead, holder_name
from monitoring.state.store import StateStore
from tests.state.support import HERE
from tests.waiting import wait_for

NAME = "window-results:telco"


class Wall:
    """A settable wall clock (seconds)."""

    def __init__(self, t: float = 1_800_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def store(store_url):
    s = StateStore(store_url)
    yield s
    s.close()


def test_one_holder_at_a_time_and_expiry_frees_it(store):
    wall = Wall()
    leases = Leases(store.db, wall)
    assert leases.try_acquire(NAME, "a", ttl_ms=10_000)
    assert leases.try_acquire(NAME, "a", ttl_ms=10_000)  # ours already: renewed, still ours
    assert not leases.try_acquire(NAME, "b", ttl_ms=10_000)
    wall.t += 9
    assert leases.renew(NAME, "a", ttl_ms=10_000) and not leases.try_acquire(NAME, "b")
    wall.t += 10.001  # a's heartbeat stopped (killed): expired
    assert leases.try_acquire(NAME, "b", ttl_ms=10_000)
    assert not leases.renew(NAME, "a") and not leases.held_by(NAME, "a") and leases.held_by(NAME, "b")
    leases.release(NAME, "a")  # a late release of a lost lease leaves the new holder alone
    assert leases.current(NAME).holder == "b"
    leases.release(NAME, "b")
    assert leases.current(NAME) is None


def test_a_busy_lease_is_waited_for_then_refused_naming_its_holder(store):
    leases = Leases(store.db, Wall())
    assert leases.try_acquire(NAME, "run-1@elsewhere:1:abc")
    slept: list[float] = []
    with pytest.raises(
        BusyError, match=r"computing X is being done by run run-1@elsewhere:1:abc \(lease until "
    ) as err:
        leases.hold(NAME, "run-2", wait_s=2.0, sleep=slept.append, what="computing X")
    assert err.value.exit_code == EXIT_BUSY
    assert slept == [LEASE_POLL_S] * 4  # waited the whole 2 s in polls, without reading a clock


def test_the_heartbeat_keeps_a_long_holder_and_release_frees_it(store):
    leases = Leases(store.db)
    with leases.hold(NAME, "long", wait_s=0.1, ttl_ms=400) as lease:
        first = leases.current(NAME).expires_ms
        wait_for(lambda: leases.current(NAME).expires_ms > first, "the heartbeat to renew the lease", 10)
        assert lease.still_held()
    assert leases.current(NAME) is None


def start_workers(url: str, n: int) -> list[subprocess.Popen]:
    procs = [
        subprocess.Popen(
            [sys.executable, str(HERE / "lease_worker.py"), url, NAME],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    return procs


def say(procs: list[subprocess.Popen], line: str) -> None:
    for p in procs:
        with contextlib.suppress(BrokenPipeError):
            p.stdin.write(line + "\n")
            p.stdin.flush()


@pytest.mark.slow
def test_processes_started_at_once_get_the_lease_exactly_once(store_url):
    StateStore(store_url).close()
    procs = start_workers(store_url, 6)
    try:
        say(procs, "go")
        answers = [p.stdout.readline().split() for p in procs]
        assert sorted(a[0] for a in answers) == ["acquired"] + ["refused"] * 5, answers
    finally:
        say(procs, "done")
        for p in procs:
            p.communicate(timeout=60)


@pytest.mark.slow
def test_a_killed_holders_lease_is_taken_at_once_on_its_host(store_url):
    StateStore(store_url).close()
    (holder,) = start_workers(store_url, 1)
    say([holder], "go")
    got, name = holder.stdout.readline().split()
    assert got == "acquired" and not holder_is_dead(name)  # alive: never taken from
    with StateStore(store_url) as store:
        with pytest.raises(BusyError):
            store.leases.hold(NAME, holder_name("next"), wait_s=0.1, sleep=lambda s: None)
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=60)
        assert holder_is_dead(name)
        with store.leases.hold(NAME, holder_name("next"), wait_s=0.1, sleep=lambda s: None) as lease:
            assert lease.still_held()


def test_only_this_hosts_processes_are_ever_called_dead():
    assert not holder_is_dead("run@some-other-engine:1:abc123")
    assert not holder_is_dead(holder_name("me"))  # this very process
    assert not holder_is_dead("no host or pid at all")
