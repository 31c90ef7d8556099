"""CML ``read_metrics`` records to numpy columns in a few C-speed passes (no json_normalize)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from monitoring.domain.record_blocks import all_finite, nondecreasing, plain_pages, well_formed_rows, without_empty

if TYPE_CHECKING:
    import pandas as pd

UUID_KEY = "predictionUuid"
START_KEY = "startTimeStampMs"  # capital S in "Stamp", as CML returns it
END_KEY = "endTimeStampMs"  # when the decorated predict returned
CRN_KEY = "modelDeploymentCrn"
METRICS_KEY = "metrics"
_EMPTY: dict = {}
_SCALARS = (str, int, float, bool)

#: Names of the ``Columns.counts`` entries, all present (0 when nothing was ignored).
COUNT_NAMES = (
    "records",
    "aggregates",
    "malformed",
    "duplicate_uuid",
    "bad_timestamp",
    "missing_prediction",
    "bad_prediction",
    "bad_label",
    "missing_features",
    "non_finite",
)


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
        latency_ms: ``endTimeStampMs - startTimeStampMs`` of each record, in ms (float64; NaN when
            the end is absent, unreadable, not finite or before the start). Defaults to all NaN.
    """

    uuid: np.ndarray
    start_ms: np.ndarray
    deployment_crn: np.ndarray
    prediction: np.ndarray
    label: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    latency_ms: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.latency_ms is None:
            self.latency_ms = np.full(self.uuid.shape[0], math.nan)

    def __len__(self) -> int:
        return int(self.uuid.shape[0])

    def take(self, index: np.ndarray) -> Columns:
        """Rows selected by an integer index or boolean mask (counts are kept as they are)."""
        return Columns(
            self.uuid[index],
            self.start_ms[index],
            self.deployment_crn[index],
            self.prediction[index],
            self.label[index],
            self.features[index],
            self.feature_names,
            dict(self.counts),
            self.latency_ms[index],
        )

    def training_frame(self, label_name: str) -> pd.DataFrame:
        """Labelled rows with every feature finite, as a frame for ``training.train_model``.

        Args:
            label_name: name to give the label column.

        Returns:
            Frame with the feature columns, the int64 label and ``start_ms``, in time order.
        """
        import pandas as pd  # only training needs it: reading records stays light

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


def _get(dicts: list, key: str, default: Any = None) -> list:
    """``[d.get(key, default) for d in dicts]`` at C speed (itemgetter when every dict has the key)."""
    try:
        return list(map(itemgetter(key), dicts))
    except KeyError:
        return list(map(dict.get, dicts, repeat(key, len(dicts)), repeat(default, len(dicts))))


def _column(dicts: list, key: str, single_lists: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """``dicts[i][key]`` as float64 (absent -> NaN) plus an unreadable mask; C speed for plain numbers."""
    n = len(dicts)
    try:
        return np.fromiter(map(itemgetter(key), dicts), dtype=np.float64, count=n), None
    except (KeyError, TypeError, ValueError, OverflowError):
        pass
    try:
        return np.fromiter(map(dict.get, dicts, repeat(key, n), repeat(math.nan, n)), dtype=np.float64, count=n), None
    except (TypeError, ValueError, OverflowError):
        return _floats(_get(dicts, key), single_lists)


def _matrix(dicts: list, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray | None]:
    """Features (n, k) as float64 plus an unreadable-cell mask; one C pass when all are plain numbers."""
    n, k = len(dicts), len(names)
    if k > 1:
        try:
            flat = np.fromiter(chain.from_iterable(map(itemgetter(*names), dicts)), dtype=np.float64, count=n * k)
            return flat.reshape(n, k), None
        except (KeyError, TypeError, ValueError, OverflowError):
            pass
    out = np.empty((n, k), dtype=np.float64)
    bad = np.zeros((n, k), dtype=bool)
    for j, name in enumerate(names):
        out[:, j], column_bad = _column(dicts, name)
        if column_bad is not None:
            bad[:, j] = column_bad
    return out, bad


def _dicts(values: list) -> tuple[list, np.ndarray | None]:
    """Replace non-dicts with an empty dict. Returns the list and a mask of replaced items (None if none)."""
    if set(map(type, values)) <= {dict}:
        return values, None
    mask = np.fromiter((not isinstance(v, dict) for v in values), dtype=bool, count=len(values))
    return [_EMPTY if bad else v for v, bad in zip(values, mask.tolist())], mask


def _select(items: list, index: Sequence[int]) -> list:
    if len(index) == 0:
        return []
    picked = itemgetter(*index)(items)
    return list(picked) if len(index) > 1 else [picked]


def _unreadable(arr: np.ndarray, bad: np.ndarray | None) -> np.ndarray:
    """Mask of values that were present but unusable: unreadable or infinite (those become NaN)."""
    mask = np.isinf(arr) if bad is None else (bad | np.isinf(arr))
    if mask.any():
        arr[mask] = math.nan
    return mask


def _last_of_each(uuids: list) -> list[int] | None:
    """Indexes of the last copy of each uuid, in input order; None when all are distinct."""
    hashes = np.sort(np.fromiter(map(hash, uuids), dtype=np.int64, count=len(uuids)))
    if not (hashes[1:] == hashes[:-1]).any():  # equal strings hash equally: no equal hashes, no duplicates
        return None
    last = dict(zip(uuids, range(len(uuids))))
    return sorted(last.values()) if len(last) != len(uuids) else None


def _time_order(start_ms: np.ndarray) -> np.ndarray:
    """Stable ascending order of start times (ties keep input order)."""
    n = start_ms.size
    span = int(start_ms.max()) - int(start_ms.min()) + 1
    if span * n < 2**62:  # unique keys (time, position): the fast unstable sort gives the stable order
        return np.argsort((start_ms - start_ms.min()) * n + np.arange(n, dtype=np.int64))
    return np.argsort(start_ms, kind="stable")


def _object_array(values: list) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=len(values))


def records_to_columns(
    records: Iterable[Mapping[str, Any]],
    feature_names: Sequence[str],
    prediction_key: str = "prediction",
    label_key: str = "final_label",
    features_key: str = "input_features",
    label_map: Mapping[Any, int] | None = None,
) -> Columns:
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
        Well-formed records (``record_blocks.well_formed_rows``) take a blocked fast path; any
        others the general one. Both give the same columns.
    """
    recs = records if isinstance(records, list) else list(records)
    counts = dict.fromkeys(COUNT_NAMES, 0)
    counts["records"] = len(recs)
    parts = (
        None
        if label_map
        else well_formed_rows(
            recs,
            (UUID_KEY, START_KEY, END_KEY, CRN_KEY, METRICS_KEY),
            feature_names,
            prediction_key,
            label_key,
            features_key,
            counts,
        )
    )
    if parts is None:
        parts = _general_rows(recs, counts, feature_names, prediction_key, label_key, features_key, label_map)
    return finish_columns(parts, counts, feature_names)


def finish_columns(parts: tuple, counts: dict[str, int], feature_names: Sequence[str]) -> Columns:
    """Columns from the rows of one decoding path: unusable values blanked and counted, time order.

    Args:
        parts: ``(uuid, start_ms, latency, crn, prediction, prediction_unreadable, label,
            label_unreadable, features, features_unreadable, scratch)`` as ``well_formed_rows``
            returns them (the unreadable masks None when every value was read; the float
            arrays are modified in place).
        counts: ``Columns.counts`` so far (records, aggregates, malformed, duplicates, timestamps).
        feature_names: the feature order of ``features``.

    Returns:
        The columns, as ``records_to_columns`` returns them.
    """
    uuid_arr, start_ms, latency, crns, prediction, pred_bad, label, label_bad, features, feature_bad, scratch = parts

    if latency.size and not (np.fmin.reduce(latency) >= 0 and np.fmax.reduce(latency) < math.inf):
        latency[~((latency >= 0) & (latency < math.inf))] = math.nan  # absent, unreadable, infinite or end < start
    if pred_bad is not None or not all_finite(prediction):
        counts["bad_prediction"] = int(_unreadable(prediction, pred_bad).sum())
        counts["missing_prediction"] = int(np.isnan(prediction).sum()) - counts["bad_prediction"]
    if label_bad is not None or not _whole_numbers(label, scratch):
        fractional = np.isfinite(label) & (label != np.round(label))
        counts["bad_label"] = int(_unreadable(label, fractional if label_bad is None else label_bad | fractional).sum())
    if feature_bad is not None or not all_finite(features):
        unusable = _unreadable(features, feature_bad)
        counts["missing_features"] = int((np.isnan(features) & ~unusable).any(axis=1).sum())
        counts["non_finite"] = int(unusable.any(axis=1).sum())

    if len(start_ms) > 1 and not nondecreasing(start_ms):
        order = _time_order(start_ms)
        uuid_arr, start_ms, crns = uuid_arr[order], start_ms[order], crns[order]
        prediction, label, latency = (
            np.take(a, order, out=plain_pages(order.size)) for a in (prediction, label, latency)
        )
        features = np.take(features, order, axis=0, out=plain_pages(order.size, features.shape[1]))
    return Columns(
        uuid=uuid_arr,
        start_ms=start_ms,
        deployment_crn=crns,
        prediction=prediction,
        label=label,
        features=features,
        feature_names=tuple(feature_names),
        counts=counts,
        latency_ms=latency,
    )


def _whole_numbers(values: np.ndarray, scratch: np.ndarray) -> bool:
    """True when every non-NaN value is a finite whole number (``scratch``: a float64 buffer as long, overwritten)."""
    if not values.size:
        return True
    if math.isinf(np.fmin.reduce(values)) or math.isinf(np.fmax.reduce(values)):  # fmin/fmax skip NaN
        return False
    np.round(values, out=scratch)
    np.subtract(scratch, values, out=scratch)
    return not np.fmax.reduce(np.abs(scratch, out=scratch)) > 0


def _general_rows(
    recs: list,
    counts: dict[str, int],
    feature_names: Sequence[str],
    prediction_key: str,
    label_key: str,
    features_key: str,
    label_map: Mapping[Any, int] | None,
) -> tuple:
    """Any records, with every oddity handled and counted (whole-list passes with fallbacks)."""
    recs, _ = _dicts(recs)
    uuids = _get(recs, UUID_KEY)
    recs, uuids, counts["aggregates"] = without_empty(recs, uuids)
    if not set(map(type, uuids)) <= {str}:
        keep = [i for i, u in enumerate(uuids) if u.__class__ is str and u]
        counts["malformed"] = len(uuids) - len(keep)
        recs, uuids = _select(recs, keep), _select(uuids, keep)
    last = _last_of_each(uuids)
    if last is not None:  # duplicates: keep the last copy of each uuid, in input order
        counts["duplicate_uuid"] = len(uuids) - len(last)
        recs, uuids = _select(recs, last), _select(uuids, last)

    metrics, no_metrics = _dicts(_get(recs, METRICS_KEY))
    starts, _ = _column(recs, START_KEY)
    bad_start = ~np.isfinite(starts)
    counts["bad_timestamp"] = int(bad_start.sum())
    drop = bad_start if no_metrics is None else (bad_start | no_metrics)
    if drop.any():
        if no_metrics is not None:
            counts["malformed"] += int((no_metrics & ~bad_start).sum())
        index = np.flatnonzero(~drop).tolist()
        recs, uuids, metrics = _select(recs, index), _select(uuids, index), _select(metrics, index)
        starts = starts[~drop]

    ends = _column(recs, END_KEY)[0]
    prediction, pred_bad = _column(metrics, prediction_key, single_lists=True)
    if label_map:
        raw = [label_map.get(v, v) if v.__class__ in _SCALARS else v for v in _get(metrics, label_key)]
        label, label_bad = _floats(raw, single_lists=True)
    else:
        label, label_bad = _column(metrics, label_key, single_lists=True)
    feature_dicts, _ = _dicts(_get(metrics, features_key, _EMPTY))
    features, feature_bad = _matrix(feature_dicts, feature_names)
    raw_crns = _get(recs, CRN_KEY)
    crns = _object_array(
        raw_crns if set(map(type, raw_crns)) <= {str} else ["" if c is None else str(c) for c in raw_crns]
    )
    return (
        _object_array(uuids),
        starts.astype(np.int64),
        ends - starts,
        crns,
        prediction,
        pred_bad,
        label,
        label_bad,
        features,
        feature_bad,
        np.empty_like(starts),
    )
