"""The replay plan: event and label times, order, the simulation clock, modelled drift, the digest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring.config.data import ReplayConfig
from monitoring.core.errors import DataError
from monitoring.domain.data.replay import build_plan
from monitoring.domain.data.sources import read_table, select_rows
from monitoring.domain.data.sources.tables import RawTable
from tests.domain import mixed

DAY, HOUR = 86_400_000, 3_600_000
JAN1 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SPEC = mixed.spec()


def table(n: int = 40, seed: int = 0) -> RawTable:
    frame = mixed.frame(n, np.random.default_rng(seed), SPEC)
    frame["sold"] = [f"2026-01-{1 + i % 28:02d}" for i in range(n)]
    frame["target"] = frame["target"].map({"No": "no", "Yes": "yes"})  # raw spellings, mapped by the spec
    return RawTable(frame, "data.replay.source (csv x.csv)", np.arange(n), lambda i: f"row {i + 1} of x.csv")


SPEC = SPEC.model_copy(update={"label": SPEC.label.model_copy(update={"mapping": {"no": "No", "yes": "Yes"}})})


def config(**kwargs) -> ReplayConfig:
    return ReplayConfig.model_validate({"source": {"kind": "csv", "path": "x.csv"}, **kwargs})


def test_event_time_from_a_column_and_labels_after_a_delay_in_event_order():
    plan = build_plan(table(), config(event_time="sold", label_delay="2d"), SPEC)
    assert len(plan) == 40 and np.all(np.diff(plan.event_ms) >= 0)
    assert plan.start_ms == JAN1 and plan.event_ms[0] == JAN1
    np.testing.assert_array_equal(plan.label_ms - plan.event_ms, 2 * DAY)
    assert set(plan.labels(SPEC)) == {"No", "Yes"}  # posted as class values


def test_event_lead_puts_each_event_a_seeded_while_before_its_label():
    source = {"kind": "csv", "path": "x.csv", "time_column": "sold"}  # the time column filters; events come before
    cfg = config(source=source, label_time="sold", event_lead={"min": "0d", "max": "59d"}, seed=7)
    plan, again = build_plan(table(), cfg, SPEC), build_plan(table(), cfg, SPEC)
    lead = plan.label_ms - plan.event_ms
    assert lead.min() >= 0 and lead.max() <= 59 * DAY and len(set(lead.tolist())) > 30
    np.testing.assert_array_equal(plan.event_ms, again.event_ms)
    assert plan.digest == again.digest
    other = build_plan(table(), cfg.model_copy(update={"seed": 8}), SPEC)
    assert other.digest != plan.digest


def test_rows_without_times_are_spaced_from_the_start_and_the_clock_maps_to_pipeline_time():
    cfg = config(row_interval="15m", start="2026-01-01", label_delay="30m", speed=2)
    plan = build_plan(table(8), cfg, SPEC)
    np.testing.assert_array_equal(plan.event_ms, JAN1 + np.arange(8) * 15 * 60_000)
    epoch = 5_000_000
    assert plan.data_time(epoch, epoch + HOUR) == JAN1 + 2 * HOUR  # two hours of data per pipeline hour
    assert plan.due(epoch, epoch) == 1  # the row at the start is due at once
    assert plan.due(epoch, epoch + HOUR // 2) == 5  # rows at 0, 15, 30, 45, 60 minutes of data time
    assert plan.due(epoch, epoch + 10 * HOUR) == 8
    np.testing.assert_array_equal(
        plan.pipeline_time(epoch, plan.label_ms[:2]), [epoch + 15 * 60_000, epoch + 22 * 60_000 + 30_000]
    )


def test_modelled_drift_relabels_matching_rows_after_its_date():
    base = config(event_time="sold", label_delay="1d")
    drift = config(event_time="sold", label_delay="1d", drift={"after": "2026-01-15", "where": {"contract": "month"}})
    before, after = build_plan(table(200, 3), base, SPEC), build_plan(table(200, 3), drift, SPEC)
    hit = (after.event_ms >= JAN1 + 14 * DAY) & (after.rows["contract"] == "month").to_numpy()
    assert after.drifted == int(hit.sum()) > 10
    flipped = np.array(before.labels(SPEC), dtype=object) != np.array(after.labels(SPEC), dtype=object)
    np.testing.assert_array_equal(flipped, hit)
    pd.testing.assert_frame_equal(before.rows[SPEC.feature_names], after.rows[SPEC.feature_names])
    assert before.digest != after.digest


def test_replayed_rows_are_checked_like_any_source():
    raw = table()
    raw.frame.loc[5, "target"] = "perhaps"
    with pytest.raises(DataError, match=r"column 'target' \(class label\) holds 'perhaps' at row 6 of x.csv"):
        build_plan(raw, config(event_time="sold", label_delay="1d"), SPEC)
    with pytest.raises(DataError, match=r"has no column 'listed' \(data.replay's event time\)"):
        build_plan(table(), config(event_time="listed", label_delay="1d"), SPEC)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"label_delay": "1d"}, "say when each row happens"),
        ({"event_time": "sold"}, "say when labels are known"),
        ({"row_interval": "1m", "label_delay": "1d"}, "row_interval needs start"),
        ({"event_time": "sold", "label_time": "sold", "event_lead": {"max": "2d"}}, "do not set event_time as well"),
        (
            {
                "event_lead": {"max": "2d"},
                "label_delay": "1d",
                "source": {"kind": "csv", "path": "x", "time_column": "t"},
            },
            "event_lead needs label_time",
        ),
    ],
)
def test_replay_config_says_what_is_missing(kwargs, message):
    with pytest.raises(ValueError, match=message):
        config(**kwargs)


def test_csv_replay_reads_through_the_sources(tmp_path):
    raw = table(10).frame
    raw.to_csv(tmp_path / "x.csv", index=False)
    cfg = config(event_time="sold", label_delay="1d")
    selected, _ = select_rows(read_table(cfg.source, tmp_path, "data.replay.source"), cfg.source)
    plan = build_plan(selected, cfg, SPEC)
    assert len(plan) == 10 and plan.rows["tenure"].dtype == np.float64
