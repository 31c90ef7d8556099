"""The recomputation check itself: it agrees with compute_accuracy, and names a window that differs or is missing."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3

import pytest

from monitoring.core.errors import EXIT_OK
from tests.chaos.recompute import assert_windows_recomputed

pytestmark = pytest.mark.slow


def check(rig) -> int:
    return assert_windows_recomputed(
        rig.ctx.store, rig.cfg, rig.ws.workspace_dir / "metrics.db", rig.ctx.artifacts_dir, "case"
    )


def test_the_check_holds_after_compute_accuracy_and_names_each_kind_of_damage(rig):
    rig.at(2.05)
    rig.traffic()
    rig.at(3.05)
    rig.traffic()  # posts the labels of the hour before
    code, _ = rig.job("compute_accuracy")
    assert code == EXIT_OK, rig.last_log[-2000:]
    assert check(rig) == 4
    store = rig.ctx.store
    window = next(w for w in store.windows() if w.labelled == w.predictions > 0)
    crn, start = window.deployment_crn, window.start_ms

    store.upsert_windows([dataclasses.replace(window, accuracy=window.accuracy + 1e-6)])
    with pytest.raises(AssertionError, match=rf"case: 1 of 4 stored windows differ .*{crn} window {start}: accuracy"):
        check(rig)
    store.upsert_windows([dataclasses.replace(window, labelled=window.labelled - 1)])
    with pytest.raises(AssertionError, match=f"labelled: stored {window.labelled - 1}, recomputed {window.labelled}"):
        check(rig)
    store.upsert_windows([window])
    assert check(rig) == 4

    # a label the window never read (posted straight into the record, past the pipeline)
    record = next(r for r in rig.records() if r["predictionUuid"] and window.start_ms <= r["startTimeStampMs"])
    with contextlib.closing(sqlite3.connect(rig.ws.workspace_dir / "metrics.db")) as db, db:
        key = rig.cfg.windows.label_key
        flipped = 1 - int(record["metrics"][key])
        db.execute(
            f"UPDATE model_metrics SET metrics = json_set(metrics, '$.{key}', ?) WHERE prediction_uuid = ?",
            (flipped, record["predictionUuid"]),
        )
    with pytest.raises(AssertionError, match=r"window \d+: confusion: stored"):
        check(rig)

    store.db.execute("DELETE FROM windows WHERE start_ms = ?", (start,))
    with pytest.raises(
        AssertionError, match=rf"complete windows with records were never stored: \['{crn} window {start}'"
    ):
        check(rig)
