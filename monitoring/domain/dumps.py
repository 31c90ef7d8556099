"""``read_metrics`` dumps (JSON text) decoded straight to columns, building only the fields the windows read."""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Any

import msgspec
import numpy as np

from monitoring.core.errors import DataError
from monitoring.domain.record_blocks import without_empty
from monitoring.domain.records import (
    COUNT_NAMES,
    CRN_KEY,
    END_KEY,
    METRICS_KEY,
    START_KEY,
    UUID_KEY,
    Columns,
    _last_of_each,
    _select,
    finish_columns,
    records_to_columns,
)

#: Records scanned to infer feature names when none are given.
FEATURE_SCAN = 1000
_FAST_ERRORS = (LookupError, TypeError, ValueError, OverflowError)
_SHAPE = 'expected a read_metrics dump, a JSON object {"metrics": [records...]}'


@lru_cache(maxsize=8)
def _decoder(prediction_key: str, label_key: str, features_key: str) -> msgspec.json.Decoder:
    """A decoder of the well-formed dump: typed fields for what is read, every other field skipped.

    Structs are not tracked by the garbage collector (``gc=False``: they hold no cycles), so
    half a million of them cost no collection passes.
    """
    metrics = msgspec.defstruct(
        "DumpMetrics",
        [("prediction", float | None, None), ("label", float | None, None), ("features", dict | None, None)],
        rename={"prediction": prediction_key, "label": label_key, "features": features_key},
        gc=False,
    )
    record = msgspec.defstruct(
        "DumpRecord",
        [
            ("uuid", str),
            ("metrics", metrics),
            ("start", float | None, None),
            ("end", float | None, None),
            ("crn", str | None, None),
        ],
        rename={"uuid": UUID_KEY, "metrics": METRICS_KEY, "start": START_KEY, "end": END_KEY, "crn": CRN_KEY},
        gc=False,
    )
    return msgspec.json.Decoder(msgspec.defstruct("Dump", [("metrics", list[record])]))


def feature_names_of(feature_dicts: Any, scan: int = FEATURE_SCAN) -> list[str]:
    """Sorted union of the keys of the first ``scan`` dicts among ``feature_dicts`` (others skipped)."""
    names: set[str] = set()
    seen = 0
    for feats in feature_dicts:
        if isinstance(feats, dict):
            names.update(str(k) for k in feats)
            seen += 1
            if seen >= scan:
                break
    return sorted(names)


def _parsed(data: Any) -> list:
    """Any dump, parsed as plain objects (json accepts the NaN and Infinity that msgspec refuses)."""
    try:
        parsed = msgspec.json.decode(data)
    except msgspec.DecodeError:
        try:
            parsed = json.loads(bytes(data))
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"not JSON ({exc})") from None
    if not isinstance(parsed, dict) or not isinstance(parsed.get("metrics"), list):
        raise DataError(_SHAPE)
    return parsed["metrics"]


def _floats(items: list, name: str) -> np.ndarray:
    """Attribute ``name`` of each item as float64, None as NaN (one C pass when there is no None)."""
    try:
        return np.fromiter(map(attrgetter(name), items), dtype=np.float64, count=len(items))
    except TypeError:
        return np.array(list(map(attrgetter(name), items)), dtype=np.float64)


def _fast_columns(recs: list, names: Sequence[str] | None) -> Columns:
    """Columns of typed records, as ``records_to_columns`` gives for the same plain records.

    Raises:
        LookupError, TypeError, ValueError, OverflowError: a record needs the general path
            (a prediction without a features dict, a missing feature, a value that is no number).
    """
    counts = dict.fromkeys(COUNT_NAMES, 0)
    counts["records"] = len(recs)
    if names is None:
        names = feature_names_of(m.features for m in map(attrgetter("metrics"), recs))
    uuids = list(map(attrgetter("uuid"), recs))
    recs, uuids, counts["aggregates"] = without_empty(recs, uuids)
    last = _last_of_each(uuids)
    if last is not None:
        counts["duplicate_uuid"] = len(uuids) - len(last)
        recs, uuids = _select(recs, last), _select(uuids, last)
    starts = _floats(recs, "start")
    bad_start = ~np.isfinite(starts)
    counts["bad_timestamp"] = int(bad_start.sum())
    if counts["bad_timestamp"]:
        keep = np.flatnonzero(~bad_start).tolist()
        recs, uuids, starts = _select(recs, keep), _select(uuids, keep), starts[~bad_start]
    n, k = len(recs), len(names)
    metrics = list(map(attrgetter("metrics"), recs))
    feats = list(map(attrgetter("features"), metrics))  # a None among them fails the getter: general path
    if k:
        getter = itemgetter(*names)
        rows = map(getter, feats) if k == 1 else chain.from_iterable(map(getter, feats))
        features = np.fromiter(rows, dtype=np.float64, count=n * k).reshape(n, k)
    else:
        features = np.empty((n, 0))
    crn_list = list(map(attrgetter("crn"), recs))
    if None in crn_list:
        crn_list = ["" if c is None else c for c in crn_list]
    crns = np.empty(n, dtype=object)
    crns[:] = crn_list
    uuid_arr = np.empty(n, dtype=object)
    uuid_arr[:] = uuids
    ends = _floats(recs, "end")
    prediction = _floats(metrics, "prediction")
    label = _floats(metrics, "label")
    parts = (uuid_arr, starts.astype(np.int64), ends - starts, crns, prediction, None, label, None, features, None)
    return finish_columns((*parts, np.empty_like(starts)), counts, names)


def decode_dump(
    data: Any,
    feature_names: Sequence[str] | None = None,
    prediction_key: str = "prediction",
    label_key: str = "final_label",
    features_key: str = "input_features",
) -> Columns:
    """Columns of a ``read_metrics`` dump, equal to ``records_to_columns(json.loads(data)["metrics"], ...)``.

    Well-formed dumps are decoded by msgspec into typed records that hold only the fields
    read (uuid, times, CRN, prediction, label, features), several times faster than building
    every object; any other dump takes the general path (every field parsed, every oddity
    counted by ``records_to_columns``).

    Args:
        data: the JSON text (bytes, or a buffer such as a memory map).
        feature_names: features to read; default: every key seen in the features of the first
            ``FEATURE_SCAN`` records that have them, sorted.
        prediction_key: metric holding the prediction.
        label_key: metric holding the ground truth.
        features_key: metric holding the input features dict.

    Returns:
        The columns.

    Raises:
        DataError: not JSON, or not ``{"metrics": [...]}``.
    """
    names = list(feature_names) if feature_names is not None else None
    try:
        recs = _decoder(prediction_key, label_key, features_key).decode(data).metrics
        return _fast_columns(recs, names)
    except (msgspec.ValidationError, msgspec.DecodeError, *_FAST_ERRORS):
        pass
    records = _parsed(data)
    if names is None:
        names = feature_names_of(
            (r.get(METRICS_KEY) or {}).get(features_key)
            if isinstance(r, dict) and isinstance(r.get(METRICS_KEY), dict)
            else None
            for r in records
        )
    return records_to_columns(
        records, names, prediction_key=prediction_key, label_key=label_key, features_key=features_key
    )
