"""Offline analysis of a read_metrics dump: the CSV, the plot, and the summary of what was ignored."""

from __future__ import annotations

import csv
import json
import math

import pytest

from monitoring.app.analyze import CSV_COLUMNS, analyze_dump
from monitoring.core.errors import DataError
from tests.domain.support import DEPLOYMENT, T0, aggregate, prediction

HOUR = 3_600_000


def dump(tmp_path, records) -> str:
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"metrics": records}))
    return str(path)


def records() -> list[dict]:
    out = [
        # 10:00-11:00: 4 labelled, 3 right
        prediction("a1", T0 + 1_000, 1, label=1),
        prediction("a2", T0 + 2_000, 0, label="0"),
        prediction("a3", T0 + 3_000, 1, label=0),
        prediction("a4", T0 + 4_000, [0], label=0),
        # 11:00-12:00: 2 predictions, 1 labelled (wrong), 1 bad label
        prediction("b1", T0 + HOUR + 5, 1, label=0),
        prediction("b2", T0 + HOUR + 6, 1, label="oops"),
        # 13:00-14:00: unlabelled
        prediction("c1", T0 + 3 * HOUR, 0),
        aggregate(T0, T0 + HOUR, 0.75),
        aggregate(T0 + HOUR, T0 + 2 * HOUR, 0.0),
        prediction("a1", T0 + 1_000, 1, label=1),  # duplicate
        {**prediction("x1", T0 + 10, 1, label=1), "metrics": {"final_label": 1}},  # no prediction
    ]
    return list(reversed(out))


def test_analyze_writes_csv_with_iso_windows_and_a_png(tmp_path):
    summary = analyze_dump(dump(tmp_path, records()), HOUR, tmp_path / "out")
    with open(tmp_path / "out" / "windows.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == [*CSV_COLUMNS, "roc_auc", "log_loss"]  # support's records track a probability (0.4)
    loss = (math.log(1 / 0.4) + 3 * math.log(1 / 0.6)) / 4  # one positive label, three negatives
    first = [DEPLOYMENT, "2026-11-23T10:00:00Z", "2026-11-23T11:00:00Z", "4", "4", "0.75", "0.5", "1.0", str(2 / 3)]
    assert rows[1][:9] == first and rows[1][9] == "0.5" and float(rows[1][10]) == pytest.approx(loss)
    # 11:00: one wrong positive prediction, no positive label: recall and ROC AUC are undefined, not 0
    second = [DEPLOYMENT, "2026-11-23T11:00:00Z", "2026-11-23T12:00:00Z", "2", "1", "0.0", "0.0", "", "0.0", ""]
    assert rows[2][:10] == second and float(rows[2][10]) == pytest.approx(math.log(1 / 0.6))
    assert rows[3] == [DEPLOYMENT, "2026-11-23T13:00:00Z", "2026-11-23T14:00:00Z", "1", "0", "", "", "", "", "", ""]
    png = (tmp_path / "out" / "accuracy.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    assert (summary.records, summary.predictions, summary.labelled, summary.windows) == (11, 7, 5, 3)
    assert summary.accuracy == 3 / 5
    assert summary.classes == [0, 1]
    assert summary.ignored["aggregates"] == 2 and summary.ignored["duplicate_uuid"] == 1
    assert summary.ignored["missing_prediction"] == 1 and summary.ignored["bad_label"] == 1
    line = summary.summary_line()
    assert line.startswith(
        f"analyzed {tmp_path / 'metrics.json'}: 11 records, 7 predictions, 5 labelled, 3 windows, "
        "overall accuracy 0.600; ignored 2 aggregates, 1 duplicates, 1 without a usable "
        "prediction, 1 bad labels, 0 malformed; wrote "
    )
    assert "\n" not in line


def test_feature_names_are_inferred_or_taken_as_given(tmp_path):
    path = dump(tmp_path, records())
    assert analyze_dump(path, HOUR, tmp_path / "o1").ignored["missing_features"] == 1  # the label-only record
    assert analyze_dump(path, HOUR, tmp_path / "o2", feature_names=["nope"]).ignored["missing_features"] == 8


def test_custom_keys(tmp_path):
    recs = [
        {
            **r,
            "metrics": {
                "predicted_result": r["metrics"]["prediction"],
                "ground_truth": r["metrics"].get("final_label"),
            },
        }
        for r in records()
        if r["predictionUuid"] and "prediction" in r["metrics"]
    ]
    summary = analyze_dump(
        dump(tmp_path, recs), HOUR, tmp_path / "out", prediction_key="predicted_result", label_key="ground_truth"
    )
    assert (summary.predictions, summary.labelled, summary.accuracy) == (7, 5, 0.6)


def test_empty_dump_still_writes_both_files(tmp_path):
    summary = analyze_dump(dump(tmp_path, [aggregate(T0, T0 + HOUR, 0.9)]), HOUR, tmp_path / "out")
    assert summary.windows == 0 and summary.accuracy is None
    assert (tmp_path / "out" / "windows.csv").read_text().strip() == ",".join(CSV_COLUMNS)
    assert (tmp_path / "out" / "accuracy.png").stat().st_size > 0


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "expected a read_metrics dump, a JSON object"),
        ('{"records": []}', "expected a read_metrics dump"),
        ("{nope", "not JSON"),
    ],
)
def test_wrong_shapes_name_the_file(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(DataError, match=f"{path}: {message}"):
        analyze_dump(path, HOUR, tmp_path / "out")
    with pytest.raises(DataError, match=f"{tmp_path / 'missing.json'}: cannot read the metrics dump"):
        analyze_dump(tmp_path / "missing.json", HOUR, tmp_path / "out")
