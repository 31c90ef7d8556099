"""The dashboard's numbers: the judged metric and its limits from the config, bounds, buckets, the drift grid, ranges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring.app.dashboard.timerange import parse_range
from monitoring.app.dashboard.views import downsample, drift_grid, metric_info, shown_metric, window_points
from monitoring.core.errors import ConfigError
from monitoring.domain.decisions.policy_results import PolicyResult
from monitoring.domain.windows.bounds import wilson_interval
from monitoring.domain.windows.results import WindowMetrics
from monitoring.state.history import WindowRow
from tests.dashboard.support import store_config

HOUR = 3_600_000


def policies(*items):
    return lambda data: data["thresholds"].update(policies=list(items))


def test_the_metric_and_its_limits_come_from_the_policies_not_from_accuracy(tmp_path):
    cfg = store_config(
        tmp_path / "s.db",
        edit=policies(
            {"kind": "min_labelled", "min": 50},
            {"kind": "absolute", "metric": "f1", "min": 0.7},
            {"kind": "relative_drop", "metric": "f1", "max_drop": 0.1},
            {"kind": "absolute", "metric": "accuracy", "min": 0.9},
        ),
    )
    assert shown_metric(cfg) == "f1"
    latest = [PolicyResult("relative_drop f1", "pass", 0.8, 0.85, 0.765, "f1 ok", "relative_drop")]
    info = metric_info(cfg, latest)
    assert (info.name, info.direction, info.confidence) == ("f1", "higher", 0.95)
    assert info.thresholds == [{"policy": "absolute", "value": 0.7}, {"policy": "relative_drop", "value": 0.765}]
    assert metric_info(cfg).thresholds[1] == {"policy": "relative_drop", "value": None}  # no decision yet
    only_drift = store_config(tmp_path / "s.db", edit=policies({"kind": "drift", "max_psi": 0.2}))
    assert shown_metric(only_drift) == "accuracy"  # the classification task's first metric


def test_bounds_are_the_wilson_interval_of_proportions_and_absent_for_others(tmp_path):
    cfg = store_config(tmp_path / "s.db", edit=policies({"kind": "wilson", "min": 0.7, "confidence": 0.9}))
    info = metric_info(cfg)
    w = WindowMetrics("crn-1", 0, HOUR, 200, 120, 0.75, 0.7, 0.6, None)
    (p,) = window_points([WindowRow.of(w, "accuracy")], info.name, info.confidence, {"crn-1": "v3"})
    assert (p.low, p.high) == pytest.approx(wilson_interval(90, 120, 0.9), abs=1e-12)
    assert (p.version, p.coverage) == ("v3", 0.6)
    (f1,) = window_points([WindowRow.of(w, "f1")], "f1", 0.9, {})
    assert (f1.value, f1.low, f1.high) == (None, None, None)
    (empty,) = window_points([WindowRow.of(WindowMetrics("crn-1", HOUR, 2 * HOUR), "accuracy")], "accuracy", 0.9, {})
    assert (empty.value, empty.low, empty.coverage) == (None, None, None)
    rng = np.random.default_rng(5)
    many = [
        WindowRow("c", i, i + 1, 300, int(n), float(v), {}, {})
        for i, (n, v) in enumerate(zip(rng.integers(0, 300, 500), rng.uniform(0, 1, 500)))
    ]
    for point, row in zip(window_points(many, "accuracy", 0.95, {}), many):  # the vectorised form is Wilson's
        want = (None, None) if row.labelled == 0 else wilson_interval(round(row.value * row.labelled), row.labelled)
        assert (point.low, point.high) == pytest.approx(want, abs=1e-12)


def test_bounds_a_window_stores_are_shown_instead_of_computed():
    row = WindowRow("c", 0, HOUR, 100, 80, 3.2, {}, {"mae@0.95": {"low": 2.9, "high": 3.6, "method": "t"}})
    (p,) = window_points([row], "mae", 0.95, {})
    assert (p.value, p.low, p.high) == (3.2, 2.9, 3.6)
    (q,) = window_points([row], "mae", 0.9, {})  # none stored at 90%, and MAE is no proportion
    assert (q.low, q.high) == (None, None)


def _points(n: int, rng: np.random.Generator):
    windows = [
        WindowMetrics(
            "crn-a" if i < n // 2 else "crn-b",
            i * HOUR,
            (i + 1) * HOUR,
            300,
            int(rng.integers(0, 250)),
            None if i % 97 == 0 else float(rng.uniform(0.6, 0.95)),
            drift={"f1": {"psi": float(rng.uniform(0, 0.5))}, "city": {"psi": float(rng.uniform(0, 0.1)), "js": 0.1}},
        )
        for i in range(n)
    ]
    rows = [WindowRow.of(w, "accuracy") for w in windows]
    return window_points(rows, "accuracy", 0.95, {"crn-a": "v1", "crn-b": "v2"})


def test_few_windows_are_drawn_one_by_one_and_many_in_at_most_max_points_buckets():
    rng = np.random.default_rng(7)
    few = _points(40, rng)
    buckets = downsample(few, 0, 40 * HOUR, 600, "higher")
    assert [(b.start_ms, b.value, b.labelled, b.windows) for b in buckets] == [
        (p.start_ms, p.value, p.labelled, 1) for p in few
    ]
    many = _points(10_000, rng)
    buckets = downsample(many, 0, 10_000 * HOUR, 600, "higher")
    assert len(buckets) <= 600 and sum(b.windows for b in buckets) == 10_000
    assert sum(b.predictions for b in buckets) == 3_000_000 and sum(b.labelled for b in buckets) == sum(
        p.labelled for p in many
    )
    for b in buckets[:50]:  # each bucket against its own windows, computed the plain way
        inside = [p for p in many if b.start_ms <= p.start_ms < b.end_ms]
        valued = [p for p in inside if p.value is not None]
        weights = [max(p.labelled, 1) for p in valued]
        assert b.value == pytest.approx(sum(p.value * wt for p, wt in zip(valued, weights)) / sum(weights))
        assert b.worst == min(p.value for p in valued) and b.low == min(p.low for p in valued if p.low is not None)
        assert b.high == max(p.high for p in valued if p.high is not None)
        assert b.version == inside[-1].version
    errors = downsample(many, 0, 10_000 * HOUR, 600, "lower")
    assert all(e.worst >= e.value - 1e-12 for e in errors if e.value is not None)  # an error's worst is its largest


def test_the_drift_grid_keeps_configured_features_first_and_each_cell_is_the_worst_psi(tmp_path):
    cfg = store_config(tmp_path / "s.db")
    points = _points(300, np.random.default_rng(3))
    grid = drift_grid(points, cfg, 0, 300 * HOUR)
    assert grid.features == ["f1", "city"] and grid.kinds == ["numeric", "numeric"]
    assert len(grid.columns) == 120 and grid.columns[0][0] == 0 and grid.columns[-1][1] == 300 * HOUR
    start, end = grid.columns[5]
    inside = [p.drift["f1"]["psi"] for p in points if start <= p.start_ms < end]
    assert grid.cells[0][5] == max(inside)
    assert drift_grid([], cfg, 0, HOUR).features == cfg.model.feature_names


def test_ranges_presets_explicit_times_and_errors():
    now, span = 100 * HOUR, (10 * HOUR, 50 * HOUR)
    assert parse_range({}, now, None).since_ms == now - 7 * 24 * HOUR  # no data, no range asked: 7d
    assert (parse_range({"range": "all"}, now, span).since_ms, parse_range({"range": "all"}, now, span).until_ms) == (
        10 * HOUR,
        now,
    )
    r = parse_range({"from": "1970-01-01T10:00", "to": "1970-01-01T12:00+00:00"}, now, span)
    assert (r.since_ms, r.until_ms, r.preset, r.query()) == (
        10 * HOUR,
        12 * HOUR,
        None,
        {"from": "1970-01-01T10:00:00Z", "to": "1970-01-01T12:00:00Z"},
    )
    assert parse_range({"range": "12h", "to": "1970-01-02T00:00Z"}, now, span).since_ms == 12 * HOUR
    for bad, message in (
        ({"range": "soon"}, "range: expected one of 6h, 24h"),
        ({"from": "yesterday"}, "from: expected an ISO time"),
        ({"from": "1970-01-02T00:00Z", "to": "1970-01-01T00:00Z"}, "must be before to"),
    ):
        with pytest.raises(ConfigError, match=message):
            parse_range(bad, now, span)
    assert not math.isnan(parse_range({"range": "all"}, now, None).since_ms)


def test_without_a_range_the_dashboard_opens_on_the_data_when_it_spans_less_than_the_default():
    """Ten hours of windows fill the range instead of the right edge of seven days; an asked-for
    range still wins, and the default is not written into links (each page works out its own)."""
    now = 1_000 * HOUR
    ten_hours = (now - 10 * HOUR, now - HOUR)
    shown = parse_range({}, now, ten_hours)
    assert (shown.since_ms, shown.until_ms, shown.preset, shown.asked) == (now - 10 * HOUR, now, "all", False)
    assert shown.query() == {}
    assert parse_range({"range": "7d"}, now, ten_hours).since_ms == now - 7 * 24 * HOUR
    assert parse_range({"range": "7d"}, now, ten_hours).query() == {"range": "7d"}
    assert parse_range({"from": "1970-02-11T00:00Z"}, now, ten_hours).since_ms == 984 * HOUR
    assert parse_range({"to": "1970-02-11T00:00Z"}, now, ten_hours).preset is None  # 7d ending there
    ahead = parse_range({}, now, (now - HOUR, now + 2 * HOUR))  # windows ending after now (a clock behind)
    assert (ahead.since_ms, ahead.until_ms) == (now - HOUR, now + 2 * HOUR)
    for span in ((now - 8 * 24 * HOUR, now), None):  # longer than the default, or no data: 7d
        long = parse_range({}, now, span)
        assert (long.since_ms, long.until_ms, long.preset, long.query()) == (now - 7 * 24 * HOUR, now, "7d", {})
