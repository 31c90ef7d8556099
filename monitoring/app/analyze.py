"""Offline analysis of an exported ``read_metrics`` dump, read as a model spec says: per-window CSV and a metric plot."""

from __future__ import annotations

import csv
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cmlbase.clock import iso_ms
from monitoring.app.analyze_plot import draw_metric, draw_with, metric_series, start_helper, stop_helper
from monitoring.config.metric_registry import (
    METRICS,
    headline_metric,
    metric_spec,
    metric_task_problem,
    task_metrics,
)
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.records.columns import Columns
from monitoring.domain.records.dumps import decode_dump
from monitoring.domain.records.values import Reading
from monitoring.domain.windows.compute import compute_windows
from monitoring.domain.windows.results import WindowMetrics

if TYPE_CHECKING:  # pydantic loads only when a config is given: analyze starts fast
    from monitoring.config.pipeline import PipelineConfig

CSV_NAME = "windows.csv"
#: The plot's file: the headline metric's name (``accuracy.png`` by default).
PNG_SUFFIX = ".png"
PNG_NAME = "accuracy.png"
BASE_COLUMNS = ("deployment_crn", "window_start", "window_end", "predictions", "labelled")
#: The CSV column after ``mape``: a regressor's labelled rows with target 0, which MAPE leaves out.
ZERO_TARGETS = "zero_targets"
#: CSV columns of drift: ``psi_<feature>``.
PSI_PREFIX = "psi_"
#: The CSV columns of a classifier without tracked probabilities (the default).
CSV_COLUMNS = (*BASE_COLUMNS, *task_metrics("classification"))


@dataclass(frozen=True)
class DumpSpec:
    """What ``analyze_dump`` reads and how: a model spec from config, or what the flags say.

    Attributes:
        reading: the features by kind, the task and the classes (None: found in the dump).
        infer_features: the feature names are every key of the first records' features.
        keys: prediction, label, features, probability and probabilities metric keys.
        metric: the headline metric, plotted (None: accuracy or MAE by task).
    """

    reading: Reading
    infer_features: bool = True
    keys: tuple[str, str, str, str, str] = (
        "prediction",
        "final_label",
        "input_features",
        "probability",
        "probabilities",
    )
    metric: str | None = None

    @classmethod
    def from_config(cls, cfg: PipelineConfig) -> DumpSpec:
        """The model spec, metric keys and headline metric of a pipeline config."""
        from monitoring.domain.windows.headline import policy_metric

        w = cfg.windows
        keys = (w.prediction_key, w.label_key, w.features_key, w.probability_key, w.probabilities_key)
        metric = headline_metric(cfg.model.task, policy_metric(cfg.thresholds.policies))
        return cls(Reading.of(cfg.model), False, keys, metric)

    @classmethod
    def from_flags(
        cls,
        task: str = "classification",
        features: Sequence[str] | None = None,
        categorical: Sequence[str] = (),
        classes: Sequence[Any] | None = None,
        keys: Sequence[str] | None = None,
        metric: str | None = None,
    ) -> DumpSpec:
        """A spec from command-line flags: named features (numeric unless ``categorical``) or every one found.

        Raises:
            ConfigError: the metric does not fit the task.
        """
        problem = metric and metric_task_problem(metric, task, "--metric")
        if problem:
            raise ConfigError(problem)
        names = list(features or [])
        cat = tuple(categorical)
        reading = Reading(
            tuple(n for n in names if n not in set(cat)),
            cat,
            task,
            None if classes is None or task == "regression" else tuple(classes),
        )
        return cls(reading, features is None, tuple(keys) if keys else cls.keys, metric)


@dataclass
class AnalysisSummary:
    """What ``analyze_dump`` read, computed and wrote.

    Attributes:
        source: the dump file.
        records: records in the dump (aggregates included).
        predictions: prediction rows kept.
        labelled: of those, rows with a usable label.
        windows: (deployment, window) results written.
        accuracy: a classifier's overall accuracy over all labelled predictions (None when none).
        classes: the classes (labels and predictions found, or the spec's); empty for a regressor.
        ignored: the ``Columns.counts`` of what was skipped or blanked.
        csv_path: the CSV written.
        png_path: the plot written.
        metric: the metric plotted.
        overall: the plotted metric over every labelled row (None when undefined).
    """

    source: str
    records: int
    predictions: int
    labelled: int
    windows: int
    accuracy: float | None
    classes: list[Any]
    ignored: dict[str, int] = field(default_factory=dict)
    csv_path: str = ""
    png_path: str = ""
    metric: str = "accuracy"
    overall: float | None = None

    def summary_line(self) -> str:
        """One line for a terminal or a log."""
        value = self.accuracy if self.metric == "accuracy" else self.overall
        shown = "n/a" if value is None else f"{value:.3f}" if self.metric == "accuracy" else f"{value:.4g}"
        c = self.ignored
        return (
            f"analyzed {self.source}: {self.records} records, {self.predictions} predictions, "
            f"{self.labelled} labelled, {self.windows} windows, overall {self.metric} {shown}; ignored "
            f"{c.get('aggregates', 0)} aggregates, {c.get('duplicate_uuid', 0)} duplicates, "
            f"{c.get('missing_prediction', 0) + c.get('bad_prediction', 0)} without a usable prediction, "
            f"{c.get('bad_label', 0)} bad labels, {c.get('malformed', 0) + c.get('bad_timestamp', 0)} malformed; "
            f"wrote {self.csv_path} and {self.png_path}"
        )


def _read(path: Path, spec: DumpSpec) -> Columns:
    """Decode the dump from a read-only memory map (no copy of the file in this process's heap)."""
    try:
        with path.open("rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            view = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
    except OSError as exc:
        raise DataError(f"{path}: cannot read the metrics dump ({exc.strerror or exc})") from None
    try:
        return decode_dump(
            view,
            spec.reading,
            *spec.keys,
            discover_classes=spec.reading.is_classifier and spec.reading.classes is None,
            infer_features=spec.infer_features,
        )
    except DataError as exc:
        raise DataError(f"{path}: {exc}") from None
    finally:
        if size:
            view.close()


def _cell(value: Any) -> Any:
    return "" if value is None else value


def csv_columns(results: Sequence[WindowMetrics], task: str) -> tuple[str, ...]:
    """The CSV header: the window, its counts, the task's metrics (ROC AUC and log-loss when any
    window has them; a regressor's ``zero_targets`` after MAPE: its rows left out, target 0) and
    ``psi_<feature>`` of each feature any window has drift for."""
    probabilities = any(r.roc_auc is not None or r.log_loss is not None for r in results)
    drifted = list(dict.fromkeys(f for r in results for f in r.drift))
    metrics: list[str] = []
    for metric in task_metrics(task, probabilities=probabilities):
        metrics += [metric, ZERO_TARGETS] if metric == "mape" else [metric]
    return (*BASE_COLUMNS, *metrics, *(f"{PSI_PREFIX}{f}" for f in drifted))


def _value(result: WindowMetrics, column: str) -> Any:
    if column == ZERO_TARGETS:
        return result.zero_targets
    if column.startswith(PSI_PREFIX) and column not in METRICS:
        return (result.drift.get(column[len(PSI_PREFIX) :]) or {}).get("psi")
    return result.value(column)


def write_csv(results: Sequence[WindowMetrics], path: str | os.PathLike, task: str = "classification") -> None:
    """Write window results as CSV with ISO 8601 UTC window bounds (blank metrics where undefined).

    Args:
        results: window results.
        path: the CSV file to write.
        task: the model's task (which metrics are columns).
    """
    columns = csv_columns(results, task)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for r in results:
            writer.writerow(
                [
                    r.deployment_crn,
                    iso_ms(r.start_ms),
                    iso_ms(r.end_ms),
                    r.predictions,
                    r.labelled,
                    *(_cell(_value(r, c)) for c in columns[len(BASE_COLUMNS) :]),
                ]
            )


def reference_of(columns: Columns, span_ms: int) -> ReferenceStats | None:
    """Reference statistics of the dump's first ``span_ms`` (from its first prediction): what later
    windows' drift is measured against when no training data is at hand. None when nothing fits.

    Raises:
        DataError: a feature has no usable value in that span.
    """
    import pandas as pd

    if not len(columns):
        return None
    early = columns.start_ms < columns.start_ms[0] + span_ms
    data: dict[str, Any] = {name: columns.features[early, j] for j, name in enumerate(columns.feature_names)}
    data.update({name: values[early] for name, values in columns.categories.items()})
    if not data:
        return None
    kinds = dict.fromkeys(columns.categories, "categorical")
    return ReferenceStats.fit(pd.DataFrame(data), list(data), kinds=kinds)


def plot_metric(
    results: Sequence[WindowMetrics], path: str | os.PathLike, metric: str = "accuracy", title: str | None = None
) -> None:
    """Save a PNG of a metric per window, one line per deployment (Agg, no display needed).

    Args:
        results: window results (windows where the metric is undefined are left out).
        path: the PNG file to write.
        metric: the metric to draw.
        title: plot title.
    """
    draw_metric(metric_series(results, metric), path, title or f"{metric} per window", metric)


def analyze_dump(
    path: str | os.PathLike,
    window_ms: int,
    out_dir: str | os.PathLike,
    prediction_key: str = "prediction",
    label_key: str = "final_label",
    features_key: str = "input_features",
    feature_names: Sequence[str] | None = None,
    spec: DumpSpec | None = None,
    reference_ms: int | None = None,
) -> AnalysisSummary:
    """Compute per-window metrics from a ``read_metrics`` dump and write ``windows.csv`` and ``<metric>.png``.

    Args:
        path: JSON file ``{"metrics": [...]}`` as returned by ``cdsw.read_metrics``.
        window_ms: window length in milliseconds.
        out_dir: directory for the outputs (created if missing).
        prediction_key: metric holding the prediction (without ``spec``).
        label_key: metric holding the ground truth (without ``spec``).
        features_key: metric holding the input features dict (without ``spec``).
        feature_names: numeric features to read (without ``spec``); default: every key seen in
            the first records' features.
        spec: what to read (``DumpSpec.from_config`` or ``from_flags``); default: a classifier
            whose classes are found in the dump, with the keys and features above.
        reference_ms: also measure each window's drift (PSI per feature, in the CSV) against the
            dump's first ``reference_ms`` (``reference_of``); None: no drift.

    Returns:
        The summary, with counts of what was ignored.

    Raises:
        DataError: the file is unreadable, not JSON, or not ``{"metrics": [...]}`` (names the file).
    """
    source = Path(path)
    if spec is None:
        keys = (prediction_key, label_key, features_key, *DumpSpec.keys[3:])
        spec = DumpSpec.from_flags(features=feature_names, keys=keys)
    task = spec.reading.task
    metric = headline_metric(task, spec.metric)
    helper = start_helper()  # loads matplotlib on another core while the dump is decoded
    try:
        columns = _read(source, spec)
        reference = reference_of(columns, reference_ms) if reference_ms else None
        scorable = not columns.is_classifier or len(columns.classes) >= 2
        results = compute_windows(columns, window_ms, reference) if scorable else []
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        csv_path, png_path = out / CSV_NAME, out / f"{metric}{PNG_SUFFIX}"
        write_csv(results, csv_path, task)
    except BaseException:
        stop_helper(helper)
        raise
    draw_with(helper, metric_series(results, metric), png_path, f"{metric} per window: {source.name}", metric)
    labelled = sum(r.labelled for r in results)
    correct = sum(_correct(r) for r in results) if columns.is_classifier else 0
    return AnalysisSummary(
        source=str(source),
        records=columns.counts["records"],
        predictions=sum(r.predictions for r in results),
        labelled=labelled,
        windows=len(results),
        accuracy=correct / labelled if labelled and columns.is_classifier else None,
        classes=list(columns.classes),
        ignored=dict(columns.counts),
        csv_path=str(csv_path),
        png_path=str(png_path),
        metric=metric,
        overall=_overall(columns, metric),
    )


def _overall(columns: Columns, metric: str) -> float | None:
    """The metric over every scored row of the dump."""
    if metric_spec(metric).task != ("classification" if columns.is_classifier else "regression"):
        return None
    overall = compute_windows(columns, 2**62)  # one window holds every row of a deployment
    values = [r.value(metric) for r in overall]
    return values[0] if len(values) == 1 else None


def _correct(result: WindowMetrics) -> int:
    c = result.confusion
    return c["tp"] + c["tn"] if "tp" in c else sum(row[i] for i, row in enumerate(c["matrix"]))
