"""Ground truth of simulated predictions, drawn again from the scenario seed (a lost label queue, rebuilt).

``simulate_traffic`` draws cycle ``c``'s rows from ``rng(c, 1)`` at the drift level of its run
and queues each answered row's label under the uuid the endpoint answered with. Drawing the
same cycle again gives the same rows, so a prediction record is matched to its row by its
tracked input features (exact floats: the features are rounded to 3 decimals and survive JSON).
A row sent more than once (a retried request) has several records; the last one is the answered
one, the others get no label, and a row whose label was posted already gets none again.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitoring.core.durations import to_ms
from monitoring.domain.data.scenario import TelcoScenario, drift_level_at
from monitoring.workflows.context import Context

LEVELS = (0.0, 1.0)


@dataclass(frozen=True)
class Prediction:
    """A prediction record: when, its tracked features, and whether its label arrived."""

    deployment_crn: str
    uuid: str
    start_ms: int
    end_ms: int
    features: tuple[float, ...] | None
    labelled: bool


@dataclass
class SeededLabels:
    """Labels found again, and what could not be matched.

    Attributes:
        rows: ``(uuid, deployment, label, due time, answer time)``; the answer time is the record's
            start, the key a post cut short is checked by (see ``labels.match_intents``).
    """

    rows: list[tuple[str, str, int, int, int]] = field(default_factory=list)
    unmatched: int = 0
    retried: int = 0

    def queue(self, ctx: Context) -> int:
        """Queue the labels found; returns how many."""
        ctx.store.label_queue.add(self.rows)
        return len(self.rows)


def feature_key(metrics: Any, features_key: str, names: Sequence[str]) -> tuple[float, ...] | None:
    """A record's tracked features in config order, as floats; None when any is missing or not a number."""
    values = metrics.get(features_key) if isinstance(metrics, dict) else None
    if not isinstance(values, dict):
        return None
    try:
        return tuple(float(values[n]) for n in names)
    except (KeyError, TypeError, ValueError):
        return None


def seeded_labels(ctx: Context, records: Iterable[Prediction], epoch_ms: int | None) -> SeededLabels:
    """Match simulated predictions to the seeded rows they were drawn as; label each unlabelled row once.

    Args:
        ctx: the run's context (config, seeded generator).
        records: the unlabelled prediction records, and the labelled ones of the same and the
            neighbouring cycles (a retried row may have been labelled through another record).
        epoch_ms: the scenario's first cycle (for the drift level); None: the first record's cycle.

    Returns:
        The labels to queue (due ``scenario.label_delay`` after each answer) and the counts of
        records no seeded row matches and of retried rows' extra records.
    """
    cfg = ctx.cfg
    cycle_ms = max(1, to_ms(cfg.scenario.cycle))
    delay, start_after = to_ms(cfg.scenario.label_delay), to_ms(cfg.scenario.drift.start_after)
    scenario = TelcoScenario.from_config(cfg)
    names = list(cfg.model.feature_names)
    todo = sorted(records, key=lambda r: r.end_ms)
    if not todo:
        return SeededLabels()
    epoch = epoch_ms if epoch_ms is not None else todo[0].start_ms - todo[0].start_ms % cycle_ms
    frames: dict[tuple[int, float], dict[tuple[float, ...], tuple[int, int]]] = {}

    def rows_of(cycle: int, level: float) -> dict[tuple[float, ...], tuple[int, int]]:
        if (cycle, level) not in frames:
            frame = scenario.generate(cfg.scenario.rows_per_cycle, ctx.rng(cycle, 1), drift_level=level)
            feats = frame[names].to_numpy(dtype=float)
            labels = frame[cfg.model.label.name].to_numpy()
            frames[(cycle, level)] = {
                tuple(float(v) for v in row): (i, int(lab)) for i, (row, lab) in enumerate(zip(feats, labels))
            }
        return frames[(cycle, level)]

    answered: dict[tuple[int, float, int], tuple[Prediction, int]] = {}
    done: set[tuple[int, float, int]] = set()
    found = SeededLabels()
    for rec in todo:
        match = None
        if rec.features is not None:
            own = drift_level_at(rec.start_ms, epoch, start_after)
            for cycle in (rec.start_ms // cycle_ms, rec.start_ms // cycle_ms - 1):
                for level in (own, *(lv for lv in LEVELS if lv != own)):
                    hit = rows_of(cycle, level).get(rec.features)
                    if hit is not None:
                        match = (cycle, level, hit[0]), hit[1]
                        break
                if match:
                    break
        if match is None:
            found.unmatched += not rec.labelled
            continue
        key, label = match
        if rec.labelled:
            done.add(key)
            continue
        if key in answered:
            found.retried += 1  # records come in answer order: the later one was answered
        answered[key] = (rec, label)
    found.retried += sum(1 for k in answered if k in done)
    found.rows = [
        (r.uuid, r.deployment_crn, lab, r.end_ms + delay, r.start_ms)
        for k, (r, lab) in answered.items()
        if k not in done
    ]
    return found
