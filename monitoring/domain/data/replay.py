"""A data set replayed as traffic: each row's event and label time, in event order, on a simulation clock.

Data set time maps to pipeline time as ``pipeline = epoch + (data - start) / speed``: the replay's
``start`` happens at ``epoch`` (the first traffic run's cycle start), and ``speed`` units of data
set time pass per unit of pipeline time. A row is sent by the first traffic run at or after its
event time; its label is posted by the first run at or after its label time.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config.data import ReplayConfig
from monitoring.config.model_spec import ModelConfig
from monitoring.core.durations import to_ms
from monitoring.core.errors import DataError
from monitoring.domain.data.sources import read_rows
from monitoring.domain.data.sources.schema import conform, label_column, time_column
from monitoring.domain.data.sources.tables import RawTable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayPlan:
    """The rows of a replay in the order they are sent.

    Attributes:
        rows: checked features and label (``sources.schema.conform``), in event order.
        event_ms: data set time each row is predicted (int64, nondecreasing).
        label_ms: data set time its label becomes known (int64).
        start_ms: data set time the replay starts at.
        speed: data set time per pipeline time.
        digest: identifies the plan, so a resumed replay knows the data did not change.
        drifted: how many rows got a modelled-drift label.
    """

    rows: pd.DataFrame
    event_ms: np.ndarray
    label_ms: np.ndarray
    start_ms: int
    speed: float
    digest: str
    drifted: int = 0

    def __len__(self) -> int:
        return int(self.event_ms.size)

    def data_time(self, epoch_ms: int, pipeline_ms: int) -> int:
        """The data set time at a pipeline time."""
        return self.start_ms + int((pipeline_ms - epoch_ms) * self.speed)

    def pipeline_time(self, epoch_ms: int, data_ms: np.ndarray) -> np.ndarray:
        """Pipeline times (int64 ms) of data set times."""
        return epoch_ms + np.floor((np.asarray(data_ms, dtype=np.int64) - self.start_ms) / self.speed).astype(np.int64)

    def due(self, epoch_ms: int, now_ms: int) -> int:
        """How many rows are due by ``now_ms``: those whose event time has come (they are a prefix)."""
        return int(np.searchsorted(self.event_ms, self.data_time(epoch_ms, now_ms), side="right"))

    def labels(self, spec: ModelConfig) -> list[Any]:
        """The label of each row as posted: a class value or a number (JSON-safe Python values)."""
        return self.rows[spec.label.name].tolist()


def _labels(frame: pd.DataFrame, spec: ModelConfig, table: RawTable) -> np.ndarray:
    label = spec.label.name
    if label not in frame.columns:
        raise DataError(f"{table.name}: has no column {label!r} (model.label): a replay posts each row's label")
    kind = "class label" if spec.is_classifier else "numeric target"
    return label_column(frame[label], spec, f"{table.name}: column {label!r} ({kind})", table.locate)


def _where_mask(table: RawTable, where: dict[str, Any]) -> np.ndarray:
    """Rows whose columns hold the given values, compared as text (``SeniorCitizen: 1`` matches "1")."""
    mask = np.ones(len(table.frame), dtype=bool)
    for column, wanted in where.items():
        if column not in table.frame.columns:
            raise DataError(f"{table.name}: has no column {column!r} (named in data.replay.drift.where)")
        values = {str(v) for v in (wanted if isinstance(wanted, list) else [wanted])}
        mask &= table.frame[column].astype(str).isin(values).to_numpy()
    return mask


def _drift(
    rows: pd.DataFrame, table: RawTable, event_ms: np.ndarray, cfg: ReplayConfig, spec: ModelConfig
) -> tuple[pd.DataFrame, int]:
    """Give the rows the drift affects their drifted label (the features stay as they are)."""
    drift = cfg.drift
    hit = (event_ms >= int(drift.after.timestamp() * 1000)) & _where_mask(table, drift.where)
    if drift.share < 1:
        hit &= np.random.default_rng([cfg.seed, 1]).random(hit.size) < drift.share
    if not hit.any():
        return rows, 0
    label = spec.label.name
    rows = rows.copy()
    if drift.label is None:  # binary: the other class
        first, second = spec.classes
        rows.loc[hit, label] = [second if v == first else first for v in rows.loc[hit, label].tolist()]
    else:
        by_text = {str(c): c for c in spec.classes}
        rows.loc[hit, label] = (
            by_text[str(spec.label.mapping.get(str(drift.label), drift.label))]
            if spec.is_classifier
            else float(drift.label)
        )
    return rows, int(hit.sum())


def _digest(rows: pd.DataFrame, event_ms: np.ndarray, label_ms: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(pd.util.hash_pandas_object(rows.astype(str), index=False).to_numpy().tobytes())
    h.update(event_ms.tobytes())
    h.update(label_ms.tobytes())
    return h.hexdigest()[:32]


def build_plan(table: RawTable, cfg: ReplayConfig, spec: ModelConfig) -> ReplayPlan:
    """Times, drift and order of a selected data set (``sources.select_rows``).

    Args:
        table: the rows to replay (selected, in the source's order).
        cfg: ``data.replay``.
        spec: the model spec.

    Returns:
        The plan; rows without a label are left out (logged).

    Raises:
        DataError: a feature, label or time that does not match (names the source, column and row).
    """
    frame = table.frame
    n = len(frame)
    derived = cfg.event_lead is not None or cfg.row_interval is not None
    event_column = cfg.event_time or (None if derived else cfg.source.time_column)
    times: dict[str, np.ndarray] = {}
    for key, column in (("event", event_column), ("label", cfg.label_time)):
        if column:
            if column not in frame.columns:
                raise DataError(f"{table.name}: has no column {column!r} (data.replay's {key} time)")
            where = f"{table.name}: column {column!r} ({key} time)"
            times[key] = time_column(frame[column], cfg.source.time_format, where, table.locate)
    rng = np.random.default_rng(cfg.seed)
    if "event" in times:
        event_ms = times["event"]
    elif cfg.event_lead is not None:
        low, high = to_ms(cfg.event_lead.min), to_ms(cfg.event_lead.max)
        event_ms = times["label"] - rng.integers(low, high + 1, size=n, dtype=np.int64)
    else:
        event_ms = int(cfg.start.timestamp() * 1000) + np.arange(n, dtype=np.int64) * to_ms(cfg.row_interval)
    label_ms = times["label"] if "label" in times else event_ms + to_ms(cfg.label_delay)
    rows = conform(frame, spec, table.name, table.locate, with_label=False)
    rows[spec.label.name] = _labels(frame, spec, table)
    drifted = 0
    if cfg.drift is not None:
        rows, drifted = _drift(rows, table, event_ms, cfg, spec)
    keep = ~pd.isna(rows[spec.label.name]).to_numpy()
    if not keep.all():
        log.warning("%s: %d rows without a label are not replayed", table.name, int((~keep).sum()))
    order = np.flatnonzero(keep)
    order = order[np.argsort(event_ms[order], kind="stable")]
    rows = rows.iloc[order].reset_index(drop=True)
    event_ms, label_ms = event_ms[order], label_ms[order]
    start = int(cfg.start.timestamp() * 1000) if cfg.start else (int(event_ms[0]) if event_ms.size else 0)
    return ReplayPlan(rows, event_ms, label_ms, start, cfg.speed, _digest(rows, event_ms, label_ms), drifted)


def read_plan(cfg: ReplayConfig, spec: ModelConfig, project_root: Path) -> ReplayPlan:
    """The rows of ``data.replay``, read from its source, in the order a replay sends them.

    Args:
        cfg: ``data.replay``.
        spec: the model spec.
        project_root: the project directory (a relative source path resolves against it).

    Raises:
        DataError: the data set cannot be read or does not match the spec.
    """
    table, _ = read_rows(cfg.source, project_root, "data.replay.source")
    return build_plan(table, cfg, spec)
