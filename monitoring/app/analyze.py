"""Offline analysis of an exported ``read_metrics`` dump: per-window CSV and an accuracy plot."""

from __future__ import annotations

import csv
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitoring.app.analyze_plot import accuracy_series, draw_accuracy, draw_with, start_helper, stop_helper
from monitoring.core.clock import iso_ms
from monitoring.core.errors import DataError
from monitoring.domain.dumps import decode_dump
from monitoring.domain.records import Columns
from monitoring.domain.window_metrics import WindowMetrics
from monitoring.domain.windows import compute_windows

CSV_NAME = "windows.csv"
PNG_NAME = "accuracy.png"
CSV_COLUMNS = (
    "deployment_crn",
    "window_start",
    "window_end",
    "predictions",
    "labelled",
    "accuracy",
    "precision",
    "recall",
    "f1",
)


@dataclass
class AnalysisSummary:
    """What ``analyze_dump`` read, computed and wrote.

    Attributes:
        source: the dump file.
        records: records in the dump (aggregates included).
        predictions: prediction rows kept.
        labelled: of those, rows with a usable label.
        windows: (deployment, window) results written.
        accuracy: overall accuracy over all labelled predictions (None when none).
        classes: the classes found (labels and predictions).
        ignored: the ``Columns.counts`` of what was skipped or blanked.
        csv_path: the CSV written.
        png_path: the plot written.
    """

    source: str
    records: int
    predictions: int
    labelled: int
    windows: int
    accuracy: float | None
    classes: list[int]
    ignored: dict[str, int] = field(default_factory=dict)
    csv_path: str = ""
    png_path: str = ""

    def summary_line(self) -> str:
        """One line for a terminal or a log."""
        acc = "n/a" if self.accuracy is None else f"{self.accuracy:.3f}"
        c = self.ignored
        return (
            f"analyzed {self.source}: {self.records} records, {self.predictions} predictions, "
            f"{self.labelled} labelled, {self.windows} windows, overall accuracy {acc}; ignored "
            f"{c.get('aggregates', 0)} aggregates, {c.get('duplicate_uuid', 0)} duplicates, "
            f"{c.get('missing_prediction', 0) + c.get('bad_prediction', 0)} without a usable prediction, "
            f"{c.get('bad_label', 0)} bad labels, {c.get('malformed', 0) + c.get('bad_timestamp', 0)} malformed; "
            f"wrote {self.csv_path} and {self.png_path}"
        )


def _read(path: Path, names: list[str] | None, prediction_key: str, label_key: str, features_key: str) -> Columns:
    """Decode the dump from a read-only memory map (no copy of the file in this process's heap)."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError as exc:
        raise DataError(f"{path}: cannot read the metrics dump ({exc.strerror or exc})") from None
    try:
        return decode_dump(view, names, prediction_key, label_key, features_key)
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    finally:
        if size:
            view.close()


def _classes(columns: Columns) -> list[int]:
    values = np.concatenate([columns.prediction, columns.label])
    values = values[np.isfinite(values)]
    found = sorted({int(v) for v in np.unique(values) if v == round(v)})
    return sorted(set(found) | {0, 1}) if set(found) <= {0, 1} else found


def _cell(value: Any) -> Any:
    return "" if value is None else value


def write_csv(results: Sequence[WindowMetrics], path: str | os.PathLike) -> None:
    """Write window results as CSV with ISO 8601 UTC window bounds (blank metrics when unlabelled).

    Args:
        results: window results.
        path: the CSV file to write.
    """
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for r in results:
            writer.writerow(
                [
                    r.deployment_crn,
                    iso_ms(r.start_ms),
                    iso_ms(r.end_ms),
                    r.predictions,
                    r.labelled,
                    _cell(r.accuracy),
                    _cell(r.precision),
                    _cell(r.recall),
                    _cell(r.f1),
                ]
            )


def plot_accuracy(
    results: Sequence[WindowMetrics], path: str | os.PathLike, title: str = "Accuracy per window"
) -> None:
    """Save a PNG of accuracy per window, one line per deployment (Agg, no display needed).

    Args:
        results: window results (unlabelled windows are left out).
        path: the PNG file to write.
        title: plot title.
    """
    draw_accuracy(accuracy_series(results), path, title)


def analyze_dump(
    path: str | os.PathLike,
    window_ms: int,
    out_dir: str | os.PathLike,
    prediction_key: str = "prediction",
    label_key: str = "final_label",
    features_key: str = "input_features",
    feature_names: Sequence[str] | None = None,
) -> AnalysisSummary:
    """Compute per-window metrics from a ``read_metrics`` dump and write ``windows.csv`` and ``accuracy.png``.

    Args:
        path: JSON file ``{"metrics": [...]}`` as returned by ``cdsw.read_metrics``.
        window_ms: window length in milliseconds.
        out_dir: directory for the outputs (created if missing).
        prediction_key: metric holding the prediction.
        label_key: metric holding the ground truth.
        features_key: metric holding the input features dict.
        feature_names: features to read; default: every key seen in the first records' features.

    Returns:
        The summary, with counts of what was ignored.

    Raises:
        DataError: the file is unreadable, not JSON, or not ``{"metrics": [...]}`` (names the file).
    """
    source = Path(path)
    names = list(feature_names) if feature_names is not None else None
    helper = start_helper()  # loads matplotlib on another core while the dump is decoded
    try:
        columns = _read(source, names, prediction_key, label_key, features_key)
        classes = _classes(columns)
        results = compute_windows(columns, window_ms, classes) if len(classes) >= 2 else []
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        csv_path, png_path = out / CSV_NAME, out / PNG_NAME
        write_csv(results, csv_path)
    except BaseException:
        stop_helper(helper)
        raise
    draw_with(helper, accuracy_series(results), png_path, f"Accuracy per window: {source.name}")
    labelled = sum(r.labelled for r in results)
    correct = sum(_correct(r) for r in results)
    return AnalysisSummary(
        source=str(source),
        records=columns.counts["records"],
        predictions=sum(r.predictions for r in results),
        labelled=labelled,
        windows=len(results),
        accuracy=correct / labelled if labelled else None,
        classes=classes,
        ignored=dict(columns.counts),
        csv_path=str(csv_path),
        png_path=str(png_path),
    )


def _correct(result: WindowMetrics) -> int:
    c = result.confusion
    return c["tp"] + c["tn"] if "tp" in c else sum(row[i] for i, row in enumerate(c["matrix"]))
