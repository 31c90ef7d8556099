"""Labels drawn again from the simulation seed: each answered row labelled once, retries and strangers not."""

from __future__ import annotations

from monitoring.core.durations import to_ms
from monitoring.domain.data.scenario import TelcoScenario
from monitoring.workflows.context import Context
from monitoring.workflows.recovery.seed_labels import Prediction, seeded_labels
from tests.state.support import project


def test_rows_are_found_again_by_their_features(tmp_path):
    cfg = project(tmp_path / "p")
    ctx = Context(cfg, None, None, tmp_path / "p")
    cycle_ms, delay = to_ms(cfg.scenario.cycle), to_ms(cfg.scenario.label_delay)
    cycle = 490_000
    start = cycle * cycle_ms + 5_000
    epoch = start - 10 * cycle_ms  # drift (after 4h) is on: level 1
    frame = TelcoScenario.from_config(cfg).generate(cfg.scenario.rows_per_cycle, ctx.rng(cycle, 1), drift_level=1.0)
    feats = [tuple(float(v) for v in row) for row in frame[list(cfg.model.feature_names)].to_numpy(dtype=float)]
    labels = [int(v) for v in frame[cfg.model.label.name]]

    def rec(uuid, row, at, labelled=False, features=None):
        return Prediction("crn", uuid, start + at, start + at + 20, features or feats[row], labelled)

    records = [
        rec("once", 0, 0),
        rec("retry-lost", 1, 10),  # its answer was lost; the retry was answered
        rec("retry-answered", 1, 900),
        rec("posted", 2, 20, labelled=True),  # labelled already through this record
        rec("posted-retry", 2, 30),
        rec("stranger", 3, 40, features=(1.0, 2.0, 3.0, 4.0)),
        rec("late", 4, cycle_ms),  # answered after the next cycle began
    ]
    found = seeded_labels(ctx, records, epoch)
    assert sorted(found.rows) == sorted(
        [
            ("once", "crn", labels[0], start + 20 + delay, start),  # due after its answer, filed under its start
            ("retry-answered", "crn", labels[1], start + 920 + delay, start + 900),
            ("late", "crn", labels[4], start + cycle_ms + 20 + delay, start + cycle_ms),
        ]
    )
    assert (found.unmatched, found.retried) == (1, 2)
