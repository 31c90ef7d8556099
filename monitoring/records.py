"""CML ``read_metrics`` records to numpy columns in a few C-speed passes (no json_normalize)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

UUID_KEY = "predictionUuid"
START_KEY = "startTimeStampMs"  # capital S in "Stamp", as CML returns it
CRN_KEY = "modelDeploymentCrn"
METRICS_KEY = "metrics"
_EMPTY: dict = {}
_SCALARS = (str, int, float, bool)

#: Names of the ``Columns.counts`` entries, all present (0 when nothing was ignored).
COUNT_NAMES = ("records", "aggregates", "malformed", "duplicate_uuid", "bad_timestamp", "missing_prediction",
               "bad_prediction", "bad_label", "missing_features", "non_finite")


@dataclass
class Columns:
    """Prediction records as aligned arrays, sorted by start time (one row per prediction uuid).

    Attributes:
        uuid: prediction uuids (object array of str).
        start_ms: request start times, epoch ms (int64).
        deployment_crn: deployment CRN of each record (object array of str; "" if absent).
        prediction: the tracked prediction (float64; NaN if absent or unreadable).
        label: the delayed ground truth (float64; NaN if unlabelled or unreadable).
        features: (n, k) float64 in ``feature_names`` order; NaN for missing or non-finite values.
        feature_names: the feature order of ``features``.
        counts: what was skipped or blanked, keyed by ``COUNT_NAMES``: ``aggregates`` (records
            with ``predictionUuid == ""``), ``malformed`` (not a dict, no uuid, no metrics dict),
            ``duplicate_uuid`` (earlier copies dropped; the last wins), ``bad_timestamp`` (rows
            dropped), ``missing_prediction``, ``bad_prediction``, ``bad_label`` (set to NaN),
            ``missing_features`` / ``non_finite`` (rows with an absent / non-finite feature).
    """

    uuid: np.ndarray
    start_ms: np.ndarray
    deployment_crn: np.ndarray
    prediction: np.ndarray
    label: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.uuid.shape[0])

    def take(self, index: np.ndarray) -> "Columns":
        """Rows selected by an integer index or boolean mask (counts are kept as they are)."""
        return Columns(self.uuid[index], self.start_ms[index], self.deployment_crn[index], self.prediction[index],
                       self.label[index], self.features[index], self.feature_names, dict(self.counts))

    def training_frame(self, label_name: str) -> pd.DataFrame:
        """Labelled rows with every feature finite, as a frame for ``training.train_model``.

        Args:
            label_name: name to give the label column.

        Returns:
            Frame with the feature columns, the int64 label and ``start_ms``, in time order.
        """
        ok = np.isfinite(self.label) & np.isfinite(self.features).all(axis=1)
        frame = pd.DataFrame(self.features[ok], columns=list(self.feature_names))
        frame[label_name] = self.label[ok].astype(np.int64)
        frame["start_ms"] = self.start_ms[ok]
        return frame


def _number(value: Any, single_lists: bool) -> float:
    """One value to float (None -> NaN); one-element lists are unwrapped when allowed; else raise."""
    if single_lists and isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if value is None:
        return math.nan
    if isinstance(value, (dict, list, tuple)):
        raise ValueError("not a single number")
    return float(value)


def _floats(values: list, single_lists: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Values to float64 (None -> NaN). Returns the array and a mask of unreadable values (None if none)."""
    try:
        arr = np.array(values, dtype=np.float64)
        if arr.ndim == 1:
            return arr, None
        if arr.ndim == 2 and single_lists and arr.shape[1] == 1:
            return arr[:, 0].copy(), None
    except (TypeError, ValueError, OverflowError):
        pass
    out = np.empty(len(values), dtype=np.float64)
    bad = np.zeros(len(values), dtype=bool)
    for i, value in enumerate(values):
        try:
            out[i] = _number(value, single_lists)
        except (TypeError, ValueError, OverflowError):
            out[i] = math.nan
            bad[i] = True
    return out, bad


def _dicts(values: list) -> tuple[list, np.ndarray | None]:
    """Replace non-dicts with an empty dict. Returns the list and a mask of replaced items (None if none)."""
    if all(v.__class__ is dict for v in values):
        return values, None
    mask = np.fromiter((v.__class__ is not dict for v in values), dtype=bool, count=len(values))
    return [v if v.__class__ is dict else _EMPTY for v in values], mask


def _get(dicts: list, key: str) -> list:
    return list(map(dict.get, dicts, repeat(key, len(dicts))))


def _select(items: list, index: Sequence[int]) -> list:
    if len(index) == 0:
        return []
    picked = itemgetter(*index)(items)
    return list(picked) if len(index) > 1 else [picked]


def _unreadable(arr: np.ndarray, bad: np.ndarray | None) -> np.ndarray:
    """Mask of values that were present but unusable: unreadable or infinite (those become NaN)."""
    mask = np.isinf(arr) if bad is None else (bad | np.isinf(arr))
    arr[mask] = math.nan
    return mask


def records_to_columns(records: Iterable[Mapping[str, Any]], feature_names: Sequence[str],
                       prediction_key: str = "prediction", label_key: str = "final_label",
                       features_key: str = "input_features", label_map: Mapping[Any, int] | None = None) -> Columns:
    """Turn CML metric records into columns, skipping aggregates and counting what was ignored.

    Args:
        records: the ``read_metrics()["metrics"]`` list (any order; may hold duplicates).
        feature_names: features to extract from ``metrics[features_key]``, in this order.
        prediction_key: metric holding the prediction (a number or a one-element list).
        label_key: metric holding the delayed ground truth ("1", 1, 1.0, True all read as 1).
        features_key: metric holding the dict of input features.
        label_map: optional mapping applied to raw labels first (e.g. ``{"yes": 1, "no": 0}``).

    Returns:
        The columns, sorted by ``start_ms`` (ties keep input order); see ``Columns.counts``.
    """
    recs = records if isinstance(records, list) else list(records)
    counts = dict.fromkeys(COUNT_NAMES, 0)
    counts["records"] = len(recs)
    recs, _ = _dicts(recs)
    uuids = _get(recs, UUID_KEY)
    counts["aggregates"] = uuids.count("")
    keep = [i for i, u in enumerate(uuids) if u.__class__ is str and u]
    counts["malformed"] = len(recs) - len(keep) - counts["aggregates"]
    if len(keep) != len(recs):
        recs, uuids = _select(recs, keep), _select(uuids, keep)
    last = dict(zip(uuids, range(len(uuids))))
    if len(last) != len(uuids):  # duplicates: keep the last copy of each uuid, in input order
        counts["duplicate_uuid"] = len(uuids) - len(last)
        index = sorted(last.values())
        recs, uuids = _select(recs, index), _select(uuids, index)

    metrics, no_metrics = _dicts(_get(recs, METRICS_KEY))
    starts, _ = _floats(_get(recs, START_KEY))
    bad_start = ~np.isfinite(starts)
    counts["bad_timestamp"] = int(bad_start.sum())
    drop = bad_start if no_metrics is None else (bad_start | no_metrics)
    if drop.any():
        counts["malformed"] += int((no_metrics & ~bad_start).sum()) if no_metrics is not None else 0
        index = np.flatnonzero(~drop).tolist()
        recs, uuids, metrics, starts = (_select(recs, index), _select(uuids, index), _select(metrics, index),
                                        starts[~drop])

    prediction, bad = _floats(_get(metrics, prediction_key), single_lists=True)
    counts["bad_prediction"] = int(_unreadable(prediction, bad).sum())
    counts["missing_prediction"] = int(np.isnan(prediction).sum()) - counts["bad_prediction"]

    raw_labels = _get(metrics, label_key)
    if label_map:
        raw_labels = [label_map.get(v, v) if v.__class__ in _SCALARS else v for v in raw_labels]
    label, bad = _floats(raw_labels, single_lists=True)
    if bad is None:
        bad = np.zeros(label.shape, dtype=bool)
    bad |= np.isfinite(label) & (label != np.round(label))
    counts["bad_label"] = int(_unreadable(label, bad).sum())

    feature_dicts, _ = _dicts(_get(metrics, features_key))
    features = np.empty((len(recs), len(feature_names)), dtype=np.float64)
    missing = np.zeros(len(recs), dtype=bool)
    non_finite = np.zeros(len(recs), dtype=bool)
    for j, name in enumerate(feature_names):
        column, bad = _floats(_get(feature_dicts, name))
        unusable = _unreadable(column, bad)
        non_finite |= unusable
        missing |= np.isnan(column) & ~unusable
        features[:, j] = column
    counts["missing_features"] = int(missing.sum())
    counts["non_finite"] = int(non_finite.sum())

    order = np.argsort(starts, kind="stable")
    crns = np.empty(len(recs), dtype=object)
    crns[:] = ["" if c is None else str(c) for c in _get(recs, CRN_KEY)]
    uuid_arr = np.empty(len(uuids), dtype=object)
    uuid_arr[:] = uuids
    return Columns(uuid=uuid_arr[order], start_ms=starts[order].astype(np.int64), deployment_crn=crns[order],
                   prediction=prediction[order], label=label[order], features=features[order],
                   feature_names=tuple(feature_names), counts=counts)
