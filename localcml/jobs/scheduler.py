"""The workspace's cron scheduler: fires job schedules on the workspace clock, and can fast-forward it.

A job with a ``schedule`` that is not ``paused`` fires at each time its cron expression names in
the job's ``timezone``, read on the workspace clock (``W/clock.json``, which every engine reads
too). A fire while the job's previous run is still active starts nothing (a job has at most one
active run) and is logged. Fires missed while the workspace was down are not replayed one by
one: the first check after the gap fires once. Dependents start when their parent succeeds (the
runner does that), never on a schedule of their own.

Rehearsing faster than real time: ``fast_forward(until_ms, fires)`` makes the scheduler jump the
clock to the next fire time whenever the workspace is idle (no active run, build or
deployment), until the clock would pass ``until_ms`` or ``fires`` fires have happened. Work
itself takes real time; only the idle time between fires is skipped. ``python -m
localcml.rehearsal`` drives it from a shell.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from cmlbase.clock import WarpClock
from cmlbase.logs import KV
from localcml.core.errors import ApiError
from localcml.core.state import ApiState
from localcml.jobs.runner import JobRunner
from localcml.jobs.schedules import next_fire_ms

log = logging.getLogger(__name__)

DEFAULT_TIMEZONE = "America/Los_Angeles"
#: Longest real wait between two looks at the schedules (a job may have been added meanwhile).
MAX_WAIT_S = 1.0
MIN_WAIT_S = 0.01


@dataclass
class FastForward:
    """A request to skip idle time: up to ``until_ms`` on the workspace clock, at most ``fires`` fires."""

    until_ms: int
    fires: int | None = None


class Scheduler:
    """Fires due schedules in a background thread.

    Args:
        state: the API state (jobs carry ``_schedule_since_ms`` and ``_last_fire_ms``).
        runner: starts the runs.
        clock: the workspace clock.
        idle: whether nothing is running (no active run, build or deployment).
    """

    def __init__(self, state: ApiState, runner: JobRunner, clock: WarpClock, idle: Callable[[], bool]):
        self.state = state
        self.runner = runner
        self.clock = clock
        self.idle = idle
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._forward: FastForward | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, daemon=True, name="cml-local-scheduler")
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)

    def wake(self) -> None:
        """Look at the schedules now (a job changed, the clock moved)."""
        self._wake.set()

    def fast_forward(self, until_ms: int, fires: int | None = None) -> None:
        """Skip idle time up to ``until_ms`` (workspace clock) or ``fires`` fires, whichever comes first."""
        with self._lock:
            self._forward = FastForward(int(until_ms), fires)
        log.info("fast-forward requested %s", KV(until_ms=until_ms, fires=fires))
        self.wake()

    # -- what is due -------------------------------------------------------------------------
    def _scheduled(self) -> list[dict]:
        return [j for j in self.state.list("job") if j.get("schedule") and not j.get("paused")]

    def _due(self, job: dict, now_ms: int) -> int:
        baseline = max(int(job.get("_schedule_since_ms") or 0), int(job.get("_last_fire_ms") or 0))
        baseline = min(baseline, now_ms)  # the clock was moved back since: count from now
        return next_fire_ms(job["schedule"], job.get("timezone") or DEFAULT_TIMEZONE, baseline)

    def next_fires(self) -> list[dict]:
        """Each scheduled job's next fire time, soonest first."""
        now = self.clock.now_ms()
        fires = [{"job_id": j["id"], "name": j["name"], "at_ms": self._due(j, now)} for j in self._scheduled()]
        return sorted(fires, key=lambda f: f["at_ms"])

    def status(self) -> dict:
        with self._lock:
            forward = self._forward
        return {
            "now_ms": self.clock.now_ms(),
            "next_fires": self.next_fires(),
            "fast_forward": None if forward is None else {"until_ms": forward.until_ms, "fires": forward.fires},
        }

    # -- firing ------------------------------------------------------------------------------
    def tick(self) -> int | None:
        """Fire what is due; fast-forward if asked and idle. Returns ms until the next fire (None: none)."""
        now = self.clock.now_ms()
        soonest = None
        for job in self._scheduled():
            due = self._due(job, now)
            if due <= now:
                self._fire(job, now)
                due = self._due(self.state.get("job", job["id"]) or job, now)
            soonest = due if soonest is None else min(soonest, due)
        if soonest is not None and self._jump(soonest):
            return 0
        return None if soonest is None else soonest - now

    def _fire(self, job: dict, now_ms: int) -> None:
        self.state.update("job", job["id"], lambda j: j.update(_last_fire_ms=now_ms))
        with self._lock:
            if self._forward is not None and self._forward.fires is not None:
                self._forward.fires -= 1
        try:
            run = self.runner.start(self.state.get("job", job["id"]) or job)
        except ApiError as exc:  # an active run (one per job), or the workspace stopping
            log.warning("schedule fired, no run started %s", KV(job=job["name"], reason=exc.message))
            return
        log.info("schedule fired %s", KV(job=job["name"], run=run["id"], schedule=job["schedule"]))

    def _jump(self, due_ms: int) -> bool:
        """Move the clock to ``due_ms`` if a fast-forward allows it and nothing runs."""
        with self._lock:
            forward = self._forward
            if forward is None:
                return False
            if due_ms > forward.until_ms or (forward.fires is not None and forward.fires <= 0):
                self._forward = None
                log.info("fast-forward done %s", KV(now_ms=self.clock.now_ms()))
                return False
        if not self.idle() or due_ms <= self.clock.now_ms():
            return False
        self.clock.set_now(due_ms)
        log.info("fast-forward: clock moved to the next fire %s", KV(at_ms=due_ms))
        return True

    def _loop(self) -> None:
        while not self._stopped.is_set():
            try:
                wait_ms = self.tick()
            except Exception:
                log.exception("scheduler tick failed")
                wait_ms = None
            if wait_ms == 0:
                continue
            with self._lock:
                forwarding = self._forward is not None
            wait_s = MAX_WAIT_S if wait_ms is None else min(MAX_WAIT_S, max(MIN_WAIT_S, wait_ms / 1000))
            if forwarding:  # waiting for the workspace to become idle: look again soon
                wait_s = min(wait_s, 0.05)
            self._wake.wait(wait_s)
            self._wake.clear()


def admin(scheduler: Scheduler):
    """The handler of ``/local/v1/scheduler``: ``GET`` its status; ``POST {"fast_forward_until_ms", "fires"}``."""
    from localcml.core.bodies import json_object
    from localcml.core.errors import invalid

    def handle(method: str, raw: bytes) -> dict:
        if method == "POST":
            change = json_object(raw, "scheduler change")
            until, fires = change.get("fast_forward_until_ms"), change.get("fires")
            if not isinstance(until, int) or isinstance(until, bool):
                raise invalid('scheduler change: expected {"fast_forward_until_ms": <ms>, "fires": <n or null>}')
            if fires is not None and (not isinstance(fires, int) or fires < 1):
                raise invalid("scheduler change: 'fires' must be a positive number of fires, or null")
            scheduler.fast_forward(until, fires)
        return scheduler.status()

    return handle
