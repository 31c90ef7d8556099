"""The general path of decoding: any records, every oddity handled and counted (whole-list passes with fallbacks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain, repeat
from operator import itemgetter
from typing import Any

import numpy as np

from monitoring.domain.records.keys import CRN_KEY, END_KEY, METRICS_KEY, START_KEY, UUID_KEY, Keys
from monitoring.domain.records.rows import RawRows, blank_unreadable, floats, last_of_each, without_empty
from monitoring.domain.records.values import Reading, category_text, probability_matrix

_EMPTY: dict = {}


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
        return floats(_get(dicts, key), single_lists)


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


def select(items: list, index: Sequence[int]) -> list:
    if len(index) == 0:
        return []
    picked = itemgetter(*index)(items)
    return list(picked) if len(index) > 1 else [picked]


def _object_array(values: list) -> np.ndarray:
    return np.fromiter(values, dtype=object, count=len(values))


def _raw(dicts: list, key: str) -> Any:
    """``dicts[i][key]`` (absent -> NaN) as float64 when all are plain numbers; else the raw values."""
    n = len(dicts)
    try:
        return np.fromiter(map(dict.get, dicts, repeat(key, n), repeat(math.nan, n)), dtype=np.float64, count=n)
    except (TypeError, ValueError, OverflowError):
        return _get(dicts, key)


def general_rows(recs: list, counts: dict[str, int], keys: Keys, reading: Reading) -> RawRows:
    """Any records, with every oddity handled and counted (whole-list passes with fallbacks)."""
    recs, _ = _dicts(recs)
    uuids = _get(recs, UUID_KEY)
    recs, uuids, counts["aggregates"] = without_empty(recs, uuids)
    if not set(map(type, uuids)) <= {str}:
        keep = [i for i, u in enumerate(uuids) if u.__class__ is str and u]
        counts["malformed"] = len(uuids) - len(keep)
        recs, uuids = select(recs, keep), select(uuids, keep)
    last = last_of_each(uuids)
    if last is not None:  # duplicates: keep the last copy of each uuid, in input order
        counts["duplicate_uuid"] = len(uuids) - len(last)
        recs, uuids = select(recs, last), select(uuids, last)

    metrics, no_metrics = _dicts(_get(recs, METRICS_KEY))
    starts, _ = _column(recs, START_KEY)
    bad_start = ~np.isfinite(starts)
    counts["bad_timestamp"] = int(bad_start.sum())
    drop = bad_start if no_metrics is None else (bad_start | no_metrics)
    if drop.any():
        if no_metrics is not None:
            counts["malformed"] += int((no_metrics & ~bad_start).sum())
        index = np.flatnonzero(~drop).tolist()
        recs, uuids, metrics = select(recs, index), select(uuids, index), select(metrics, index)
        starts = starts[~drop]

    ends = _column(recs, END_KEY)[0]
    feature_dicts, _ = _dicts(_get(metrics, keys.features, _EMPTY))
    features, feature_bad = _matrix(feature_dicts, reading.numeric)
    categories, categories_bad = {}, {}
    for name in reading.categorical:
        categories[name], bad = category_text(_get(feature_dicts, name))
        if bad is not None:
            categories_bad[name] = bad
    raw_crns = _get(recs, CRN_KEY)
    crns = _object_array(
        raw_crns if set(map(type, raw_crns)) <= {str} else ["" if c is None else str(c) for c in raw_crns]
    )
    return RawRows(
        _object_array(uuids),
        starts.astype(np.int64),
        ends - starts,
        crns,
        _raw(metrics, keys.prediction),
        _raw(metrics, keys.label),
        features,
        feature_bad,
        categories,
        categories_bad,
        _general_proba(metrics, keys, reading),
    )


def _general_proba(metrics: list, keys: Keys, reading: Reading) -> np.ndarray | None:
    """The probabilities of any records (see ``Columns.proba``); None for a regressor."""
    if not reading.is_classifier:
        return None
    multi = reading.classes is not None and len(reading.classes) > 2
    if not multi:
        vector, bad = _column(metrics, keys.probability, single_lists=True)
        blank_unreadable(vector, bad)
        if reading.classes is None or not np.isnan(vector).all():
            return vector
    matrix = probability_matrix(_get(metrics, keys.probabilities), reading)
    return matrix if multi else matrix[:, reading.positive_index()]
