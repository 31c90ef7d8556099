"""``read_metrics`` dumps (JSON text) decoded straight to columns, building only the fields the windows read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
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
#: Bytes of JSON decoded at a time (about 10,000 records of CML's shape).
PIECE_BYTES = 8 << 20
#: Between two records of the array: the end of one object, a comma, the start of the next.
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_OPEN, _CLOSE = b'{"metrics":[', b"]}"
_FAST_ERRORS = (AttributeError, LookupError, TypeError, ValueError, OverflowError)
_SHAPE = 'expected a read_metrics dump, a JSON object {"metrics": [records...]}'


def _field(i: int) -> str:
    return f"f{i}"


@lru_cache(maxsize=8)
def _decoder(
    prediction_key: str, label_key: str, features_key: str, strict: bool, names: tuple[str, ...] | None
) -> msgspec.json.Decoder:
    """A decoder of the well-formed dump: typed fields for what is read, every other field skipped
    (but at the top level when ``strict``: there only "metrics" is allowed). Features are a dict,
    or with ``names`` a struct of exactly those (fields ``f0, f1...``; a missing one is an error).

    Structs are not tracked by the garbage collector (``gc=False``: they hold no cycles), so
    half a million of them cost no collection passes.
    """
    features: Any = dict
    if names is not None:
        fields = [(_field(i), Any) for i in range(len(names))]
        rename = {_field(i): name for i, name in enumerate(names)}
        features = msgspec.defstruct("DumpFeatures", fields, rename=rename, gc=False)
    metrics = msgspec.defstruct(
        "DumpMetrics",
        [("prediction", float | None, None), ("label", float | None, None), ("features", features | None, None)],
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
    return msgspec.json.Decoder(msgspec.defstruct("Dump", [("metrics", list[record])], forbid_unknown_fields=strict))


def _scan_names(feature_dicts: Any, scan: int = FEATURE_SCAN) -> tuple[list[str], int]:
    names: set[str] = set()
    seen = 0
    for feats in feature_dicts:
        if isinstance(feats, dict):
            names.update(str(k) for k in feats)
            seen += 1
            if seen >= scan:
                break
    return sorted(names), seen


def feature_names_of(feature_dicts: Any, scan: int = FEATURE_SCAN) -> list[str]:
    """Sorted union of the keys of the first ``scan`` dicts among ``feature_dicts`` (others skipped)."""
    return _scan_names(feature_dicts, scan)[0]


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


def _piece_rows(recs: list, getter: Any, k: int) -> tuple:
    """One piece's records, aggregates dropped: ``(uuids, crns, start, end, prediction, label, features, aggregates)``.

    ``getter`` reads the ``k`` feature values of a record's features (a dict or a struct).

    Raises:
        AttributeError, LookupError, TypeError, ValueError, OverflowError: a record needs the general path
            (a prediction without a features dict, a missing feature, a value that is no number).
    """
    uuids = list(map(attrgetter("uuid"), recs))
    recs, uuids, aggregates = without_empty(recs, uuids)
    n = len(recs)
    metrics = list(map(attrgetter("metrics"), recs))
    feats = list(map(attrgetter("features"), metrics))  # a None among them fails the getter: general path
    if k:
        rows = map(getter, feats) if k == 1 else chain.from_iterable(map(getter, feats))
        features = np.fromiter(rows, dtype=np.float64, count=n * k).reshape(n, k)
    else:
        features = np.empty((n, 0))
    crns = list(map(attrgetter("crn"), recs))
    if None in crns:
        crns = ["" if c is None else c for c in crns]
    return (
        uuids,
        crns,
        _floats(recs, "start"),
        _floats(recs, "end"),
        _floats(metrics, "prediction"),
        _floats(metrics, "label"),
        features,
        aggregates,
    )


def _pieces(data: Any) -> Iterator[Any]:
    """The dump cut between records about every ``PIECE_BYTES``, each piece a dump of its own.

    A cut is sound only where both pieces decode: a cut inside a record or a string leaves a
    piece unbalanced, and the strict decoder refuses any top-level key but "metrics" (so the
    cuts lie in the records array). Pieces are views of one reused buffer (fresh memory for
    each would cost a page fault per 4 kB), valid until the next one is made.
    """
    size, start, pos = len(data), 0, PIECE_BYTES
    view = memoryview(data)
    buffer = bytearray()
    while pos < size - PIECE_BYTES // 4:
        found = _BOUNDARY.search(data, pos)
        if found is None:
            break
        end = found.start() + 1
        head = b"" if start == 0 else _OPEN
        length = len(head) + end - start + len(_CLOSE)
        if len(buffer) < length:
            buffer = bytearray(2 * length)
        buffer[: len(head)] = head
        buffer[len(head) : length - len(_CLOSE)] = view[start:end]
        buffer[length - len(_CLOSE) : length] = _CLOSE
        yield memoryview(buffer)[:length]
        start, pos = found.end() - 1, found.end() + PIECE_BYTES
    if start == 0:
        yield data
    else:
        buffer = bytearray()  # the views of it are gone: the last piece gets its own memory
        yield _OPEN + view[start:]


def _fast_columns(data: Any, names: list[str] | None, keys: tuple[str, str, str], cut: bool) -> Columns:
    """Columns of a well-formed dump, decoded piece by piece (each piece's records freed before the
    next is decoded: they stay in the CPU cache and the peak memory stays low).

    Raises:
        msgspec.ValidationError, msgspec.DecodeError: the dump is not a well-formed one.
        AttributeError, LookupError, TypeError, ValueError, OverflowError: a record needs the general path.
    """
    decoder = _decoder(*keys, cut, None if names is None else tuple(names))
    as_dicts = names is None
    parts: list[tuple] = []
    records = 0
    for piece in _pieces(data) if cut else (data,):
        recs = decoder.decode(piece).metrics
        partial = piece is not data
        del piece
        records += len(recs)
        if names is None:
            names, seen = _scan_names(m.features for m in map(attrgetter("metrics"), recs))
            if seen < FEATURE_SCAN and partial:
                raise ValueError("too few records in the first piece to infer the feature names")
            decoder = _decoder(*keys, cut, tuple(names))  # the next pieces: features as a struct
        k = len(names)
        getter = itemgetter(*names) if as_dicts else attrgetter(*map(_field, range(k)))
        parts.append(_piece_rows(recs, getter if k else None, k))
        as_dicts = False
        del recs
    uuids = list(chain.from_iterable(p[0] for p in parts))
    crns = list(chain.from_iterable(p[1] for p in parts))
    starts, ends, prediction, label, features = (np.concatenate([p[i] for p in parts]) for i in range(2, 7))
    counts = dict.fromkeys(COUNT_NAMES, 0)
    counts["records"], counts["aggregates"] = records, sum(p[7] for p in parts)
    del parts
    index = _last_of_each(uuids)
    if index is not None:
        counts["duplicate_uuid"] = len(uuids) - len(index)
    keep = np.arange(len(uuids)) if index is None else np.asarray(index, dtype=np.intp)
    good = np.isfinite(starts[keep])
    counts["bad_timestamp"] = int(good.size - np.count_nonzero(good))
    if index is not None or counts["bad_timestamp"]:
        keep = keep[good]
        listed = keep.tolist()
        uuids, crns = _select(uuids, listed), _select(crns, listed)
        starts, ends, prediction, label, features = (a[keep] for a in (starts, ends, prediction, label, features))
    uuid_arr, crn_arr = np.empty(len(uuids), dtype=object), np.empty(len(crns), dtype=object)
    uuid_arr[:], crn_arr[:] = uuids, crns
    rows = (uuid_arr, starts.astype(np.int64), ends - starts, crn_arr, prediction, None, label, None, features, None)
    return finish_columns((*rows, np.empty_like(starts)), counts, names)


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
    keys = (prediction_key, label_key, features_key)
    for cut in (True, False):  # in pieces; whole (other top-level keys); else the general path
        try:
            return _fast_columns(data, names, keys, cut)
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
