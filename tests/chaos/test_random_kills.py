"""SIGKILLs at seeded random moments of simulate_traffic and compute_accuracy; the runs after them converge.

Each seed draws, from its own ``random.Random(seed)``, the order of three kills (two traffic
runs, one compute_accuracy run) and for each one a moment: a kind (predictions recorded, labels
queued, labels being posted, a time after the intents were written; for compute_accuracy a time
after it started, a time after it took the window-results lease, an aggregate being sent) and
its count or delay. The moment is read from the stores by a bounded poll; a run that ends
before it is an outcome too (it must then explain itself). After each kill the jobs run again
until they converge, and the invariants are checked: every answered prediction labelled once
with its own row's label, no label posted twice (counted as posts land), each window's
aggregate sent at most once, a documented exit code and a VERDICT line on every run that ended
by itself, and the stored windows equal to a recomputation from the raw records.

Replaying a seed: ``CML_MONITOR_CHAOS_SEEDS=7 pytest tests/chaos/test_random_kills.py`` runs
seed 7 alone (``1,5,9`` or ``100-119`` run several). The seed fixes what is drawn; where a kill
falls inside the drawn moment still depends on real process timing.
"""

from __future__ import annotations

import contextlib
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from monitoring.core.durations import to_ms
from monitoring.core.errors import EXIT_OK
from monitoring.state.aggregates import SENT
from monitoring.workflows.accuracy import lease_name
from tests.chaos.label_checks import PostCounter, Watch, assert_labelled_exactly_once
from tests.chaos.recompute import assert_windows_recomputed
from tests.chaos.runs import assert_explained, kill_at, run_to_end
from tests.faults.rig import HOUR, Rig

pytestmark = pytest.mark.slow

SEEDS_ENV = "CML_MONITOR_CHAOS_SEEDS"
DEFAULT_SEEDS = (1, 2, 3)
ROWS = 300  # above the queue's batch (200): a kill can fall between two batches
LATENCY = ("latency.model=delay:10ms always", "latency.metrics=delay:10ms always")
#: compute_accuracy's reads and sends are slowed further while it may be killed, so that its moments last.
SLOW_METRICS = "latency.metrics=delay:150ms always"
KILLS = ("simulate_traffic", "simulate_traffic", "compute_accuracy")


def seeds() -> list[int]:
    """The seeds to run: ``CML_MONITOR_CHAOS_SEEDS`` (``7``, ``1,5,9``, ``100-119``) or the defaults."""
    text = os.environ.get(SEEDS_ENV, "").strip()
    if not text:
        return list(DEFAULT_SEEDS)
    out: list[int] = []
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        out += list(range(int(low), int(high or low) + 1))
    return out


@dataclass
class Moment:
    """When to kill a run: ``check(pid, seconds since it started)``, and how a person names it."""

    what: str
    check: Callable[[int, float], bool]


def after_first(condition: Callable[[int], bool], delay_s: float) -> Callable[[int, float], bool]:
    """Holds ``delay_s`` after ``condition(pid)`` was first seen to hold (a real process's timing)."""
    seen: list[float] = []

    def check(pid: int, elapsed: float) -> bool:
        if not seen and condition(pid):
            seen.append(time.monotonic())
        return bool(seen) and time.monotonic() - seen[0] >= delay_s

    return check


def traffic_moment(rng: random.Random, watch: Watch) -> Moment:
    """A random moment of a traffic run (counts relative to the stores now, just before it starts)."""
    records, queued, labelled, due = watch.records(), watch.queued(), watch.labelled(), watch.unposted()
    kind = rng.choice(("recorded", "queued", "posting", "intents"))
    if kind == "recorded":
        n = rng.randint(1, ROWS - 1)
        return Moment(f"after {n} predictions were recorded", lambda pid, t: watch.records() >= records + n)
    if kind == "queued":
        n = rng.randint(1, ROWS - 1)
        return Moment(f"after {n} labels were queued", lambda pid, t: watch.queued() >= queued + n)
    if kind == "posting" and due > 1:
        n = rng.randint(1, due - 1)
        return Moment(
            f"while posting labels, {n} of {due} landed",
            lambda pid, t: watch.posting() > 0 and watch.labelled() >= labelled + n,
        )
    delay = round(rng.uniform(0.0, 2.0), 2)
    return Moment(f"{delay}s after its intents were written", after_first(lambda pid: watch.intents() > 0, delay))


def compute_moment(rng: random.Random, watch: Watch, model: str) -> Moment:
    """A random moment of a compute_accuracy run."""
    intended = watch.aggregates_intended()
    kind = rng.choice(("started", "lease", "sending"))
    if kind == "started":
        delay = round(rng.uniform(0.5, 4.0), 2)
        return Moment(f"{delay}s after it started", lambda pid, t: t >= delay)
    if kind == "lease":
        delay = round(rng.uniform(0.0, 1.0), 2)
        held = after_first(lambda pid: watch.lease_held_by(lease_name(model), pid), delay)
        return Moment(f"{delay}s after it took the window-results lease", held)
    n = rng.randint(1, 3)
    return Moment(
        f"while sending aggregate {n} of the run",
        lambda pid, t: watch.aggregates_sending() > 0 and watch.aggregates_intended() >= intended + n,
    )


@contextlib.contextmanager
def replayable(context: list[str]) -> Iterator[None]:
    """Every failure inside says the seed, what was drawn so far, and how to replay it."""
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{'; '.join(context)} (replay: {SEEDS_ENV}={context[0][5:]}): {exc}") from exc


class Chaos:
    """One seed's kills on a rig, the runs after them, and the invariants between them."""

    def __init__(self, rig: Rig, seed: int):
        self.rig, self.seed, self.rng = rig, seed, random.Random(seed)
        self.watch = Watch(rig)
        self.posts = PostCounter(self.watch.metrics, rig.cfg.windows.label_key)
        self.context = [f"seed={seed}"]
        self.hour = 2.05

    def step(self) -> None:
        self.rig.at(self.hour)
        self.hour += 1

    def ran(self, job: str) -> None:
        """Run a job to its end: after a kill, it must succeed and say so."""
        code, out = run_to_end(self.rig, job)
        fields = assert_explained(code, out)
        assert code == EXIT_OK, f"{job} after the kill: exit {code}, {fields.get('summary')}\n{out[-3000:]}"

    def kill(self, job: str, moment: Moment) -> None:
        self.context.append(f"{job} killed {moment.what}")
        code, out = kill_at(self.rig, job, moment.check, f"{job}: {moment.what}")
        if code is not None:  # it ended before the moment came: it must explain itself
            assert_explained(code, out)
            self.context[-1] += f" (ended first, exit {code})"

    def kill_traffic(self) -> None:
        """Kill a traffic run; the next hour's run recovers its labels (windows are computed in the other rounds)."""
        self.step()
        self.kill("simulate_traffic", traffic_moment(self.rng, self.watch))
        self.step()
        self.ran("simulate_traffic")

    def kill_compute(self) -> None:
        """A label horizon later, traffic posts the labels due, then compute_accuracy (several windows settle) is killed."""
        self.hour += to_ms(self.rig.cfg.windows.label_horizon) / HOUR
        self.step()
        self.ran("simulate_traffic")
        faults = self.rig.ws.faults
        faults.clear()
        faults.add(SLOW_METRICS)
        try:
            self.kill("compute_accuracy", compute_moment(self.rng, self.watch, self.rig.cfg.model.name))
        finally:
            faults.clear()
            faults.add(*LATENCY)
        self.ran("compute_accuracy")

    def assert_converged(self) -> None:
        """What must hold after the runs that follow a kill: nothing left half done, nothing twice."""
        queue = self.rig.ctx.store.label_queue
        assert queue.intents() == [], "intents were left unresolved"
        assert queue.in_doubt(10) == [], "label posts were left in doubt"
        self.posts.assert_none_twice()
        aggregates = Counter(
            (r["modelDeploymentCrn"], r["startTimeStampMs"], r["endTimeStampMs"])
            for r in self.rig.records()
            if r["predictionUuid"] == ""
        )
        twice = {k: n for k, n in aggregates.items() if n > 1}
        assert not twice, f"aggregates sent more than once: {twice}"
        ledger = self.rig.ctx.store.aggregates.rows()
        assert all(r.state == SENT for r in ledger), (
            f"aggregates left half sent: {[r for r in ledger if r.state != SENT]}"
        )
        missing = [r for r in ledger if (r.deployment_crn, r.start_ms, r.end_ms) not in aggregates]
        assert not missing, f"aggregates marked sent that never reached the metrics store: {missing}"


@pytest.mark.parametrize("seed", seeds(), ids=lambda s: f"seed={s}")
def test_sigkills_at_random_moments_lose_and_double_nothing(rig, seed):
    rig.reconfigure(scenario={"rows_per_cycle": ROWS})
    rig.ws.faults.add(*LATENCY)
    since = rig.at(2.0)
    chaos = Chaos(rig, seed)
    with replayable(chaos.context):
        for job in chaos.rng.sample(KILLS, len(KILLS)):
            chaos.kill_traffic() if job == "simulate_traffic" else chaos.kill_compute()
            chaos.assert_converged()
        rig.settle()  # every queued label due and posted: the windows read them all
        chaos.ran("compute_accuracy")
        checked = assert_labelled_exactly_once(rig, since)
        assert checked >= 2 * ROWS, f"only {checked} predictions were recorded"
        chaos.assert_converged()
        windows = assert_windows_recomputed(rig.ctx.store, rig.cfg, chaos.watch.metrics, rig.ctx.artifacts_dir)
        assert windows >= 4
    print(f"{'; '.join(chaos.context)}: {checked} predictions, {windows} windows, {len(chaos.posts.posts())} posts")
