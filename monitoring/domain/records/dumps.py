"""``read_metrics`` dumps (JSON text) decoded straight to columns, building only the fields the windows read."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from itertools import chain
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np

from monitoring.core.errors import DataError
from monitoring.domain.records.columns import COUNT_NAMES, Columns, finish_columns
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.records.keys import CRN_KEY, END_KEY, METRICS_KEY, START_KEY, UUID_KEY, Keys
from monitoring.domain.records.rows import RawRows, last_of_each, without_empty
from monitoring.domain.records.values import Reading, category_text, probability_matrix

#: Records scanned to infer feature names when none are given.
FEATURE_SCAN = 1000
#: Bytes of JSON decoded at a time (about 10,000 records of CML's shape).
PIECE_BYTES = 8 << 20
#: Between two records of the array: the end of one object, a comma, the start of the next.
_BOUNDARY = re.compile(rb"\}\s*,\s*\{")
_OPEN, _CLOSE = b'{"metrics":[', b"]}"
if TYPE_CHECKING:
    from monitoring.config.model_spec import ModelConfig

_FAST_ERRORS = (AttributeError, LookupError, TypeError, ValueError, OverflowError)
_SHAPE = 'expected a read_metrics dump, a JSON object {"metrics": [records...]}'


def _field(i: int) -> str:
    return f"f{i}"


@lru_cache(maxsize=8)
def _decoder(keys: Keys, strict: bool, names: tuple[str, ...] | None, proba: bool) -> msgspec.json.Decoder:
    """A decoder of the well-formed dump: typed fields for what is read, every other field skipped
    (but at the top level when ``strict``: there only "metrics" is allowed). Features are a dict,
    or with ``names`` a struct of exactly those (fields ``f0, f1...``; a missing one is an error).
    Predictions and labels are numbers or text (class names); ``proba`` adds the probabilities.

    Structs are not tracked by the garbage collector (``gc=False``: they hold no cycles), so
    half a million of them cost no collection passes.
    """
    features: Any = dict
    if names is not None:
        fields = [(_field(i), Any) for i in range(len(names))]
        rename = {_field(i): name for i, name in enumerate(names)}
        features = msgspec.defstruct("DumpFeatures", fields, rename=rename, gc=False)
    value = float | str | None
    metric_fields = [("prediction", value, None), ("label", value, None), ("features", features | None, None)]
    rename = {"prediction": keys.prediction, "label": keys.label, "features": keys.features}
    if proba:
        metric_fields += [("probability", float | None, None), ("probabilities", dict | None, None)]
        rename.update(probability=keys.probability, probabilities=keys.probabilities)
    metrics = msgspec.defstruct("DumpMetrics", metric_fields, rename=rename, gc=False)
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


def _values(items: list, name: str) -> Any:
    """Attribute ``name`` of each item: float64 when all are numbers (or None), else the raw values."""
    try:
        return _floats(items, name)
    except (TypeError, ValueError):
        return list(map(attrgetter(name), items))


def _piece_proba(metrics: list, reading: Reading) -> np.ndarray | None:
    if not reading.is_classifier:
        return None
    if reading.classes is not None and len(reading.classes) > 2:
        return probability_matrix(list(map(attrgetter("probabilities"), metrics)), reading)
    vector = _floats(metrics, "probability")
    if reading.classes is not None and np.isnan(vector).all():
        dicts = list(map(attrgetter("probabilities"), metrics))
        if any(d is not None for d in dicts):
            return probability_matrix(dicts, reading)[:, reading.positive_index()]
    return vector


def _piece_rows(recs: list, getter: Any, reading: Reading, categorical: list[int]) -> tuple[RawRows, int]:
    """One piece's records, aggregates dropped, and how many aggregates there were.

    ``getter`` reads the feature values of a record's features (a dict or a struct): the
    numeric ones, then those at ``categorical`` positions among all names.

    Raises:
        AttributeError, LookupError, TypeError, ValueError, OverflowError: a record needs the general path
            (a prediction without a features dict, a missing feature, a numeric feature that is no number).
    """
    uuids = list(map(attrgetter("uuid"), recs))
    recs, uuids, aggregates = without_empty(recs, uuids)
    n = len(recs)
    metrics = list(map(attrgetter("metrics"), recs))
    feats = list(map(attrgetter("features"), metrics))  # a None among them fails the getter: general path
    k = len(reading.numeric) + len(reading.categorical)
    features = np.empty((n, 0))
    categories = {}
    if k and not categorical:  # numbers only: one C pass
        values = map(getter, feats) if k == 1 else chain.from_iterable(map(getter, feats))
        features = np.fromiter(values, dtype=np.float64, count=n * k).reshape(n, k)
    elif k:
        rows = [getter(f) for f in feats] if k > 1 else [(getter(f),) for f in feats]
        numeric = [j for j in range(k) if j not in set(categorical)]
        if numeric:
            pick = itemgetter(*numeric) if len(numeric) > 1 else (lambda row: (row[numeric[0]],))
            flat = np.fromiter(chain.from_iterable(map(pick, rows)), dtype=np.float64, count=n * len(numeric))
            features = flat.reshape(n, len(numeric))
        for name, j in zip(reading.categorical, categorical):
            text, bad = category_text([row[j] for row in rows])
            if bad is not None:
                raise ValueError(f"unreadable value in categorical feature {name!r}")
            categories[name] = text
    crns = list(map(attrgetter("crn"), recs))
    if None in crns:
        crns = ["" if c is None else c for c in crns]
    starts = _floats(recs, "start")
    uuid_arr, crn_arr = np.empty(n, dtype=object), np.empty(n, dtype=object)
    uuid_arr[:], crn_arr[:] = uuids, crns
    rows_out = RawRows(
        uuid_arr,
        starts,  # float starts until the pieces are joined
        _floats(recs, "end"),
        crn_arr,
        _values(metrics, "prediction"),
        _values(metrics, "label"),
        features,
        categories=categories,
        proba=_piece_proba(metrics, reading),
    )
    return rows_out, aggregates


def _joined(parts: list[RawRows]) -> RawRows:
    """The pieces' rows as one (float64 columns stay float64; a raw list anywhere makes lists)."""

    def join(values: list) -> Any:
        if all(isinstance(v, np.ndarray) for v in values):
            return np.concatenate(values) if values else np.empty(0)
        return list(chain.from_iterable(v.tolist() if isinstance(v, np.ndarray) else v for v in values))

    first = parts[0]
    proba = [p.proba for p in parts]
    return RawRows(
        np.concatenate([p.uuid for p in parts]),
        np.concatenate([p.start_ms for p in parts]),
        np.concatenate([p.latency for p in parts]),
        np.concatenate([p.crn for p in parts]),
        join([p.prediction for p in parts]),
        join([p.label for p in parts]),
        np.concatenate([p.features for p in parts]),
        categories={name: np.concatenate([p.categories[name] for p in parts]) for name in first.categories},
        proba=None if any(p is None for p in proba) else np.concatenate(proba),
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


def _fast_columns(data: Any, reading: Reading, infer: bool, keys: Keys, cut: bool) -> Columns:
    """Columns of a well-formed dump, decoded piece by piece (each piece's records freed before the
    next is decoded: they stay in the CPU cache and the peak memory stays low).

    Raises:
        msgspec.ValidationError, msgspec.DecodeError: the dump is not a well-formed one.
        AttributeError, LookupError, TypeError, ValueError, OverflowError: a record needs the general path.
    """
    names = None if infer else [*reading.numeric, *reading.categorical]
    proba = reading.is_classifier
    decoder = _decoder(keys, cut, None if names is None else tuple(names), proba)
    as_dicts = names is None
    parts: list[RawRows] = []
    records = aggregates = 0
    for piece in _pieces(data) if cut else (data,):
        recs = decoder.decode(piece).metrics
        partial = piece is not data
        del piece
        records += len(recs)
        if names is None:
            found, seen = _scan_names(m.features for m in map(attrgetter("metrics"), recs))
            if seen < FEATURE_SCAN and partial:
                raise ValueError("too few records in the first piece to infer the feature names")
            reading = _inferred(reading, found)
            names = [*reading.numeric, *reading.categorical]
            decoder = _decoder(keys, cut, tuple(names), proba)  # the next pieces: features as a struct
        k = len(names)
        categorical = list(range(len(reading.numeric), k))
        if as_dicts:
            getter = itemgetter(*names) if k else None
        else:
            getter = attrgetter(*map(_field, range(k))) if k else None
        rows, skipped = _piece_rows(recs, getter, reading, categorical)
        parts.append(rows)
        aggregates += skipped
        as_dicts = False
        del recs
    if names is None:
        reading = _inferred(reading, [])
    rows = _joined(parts) if parts else _empty_rows(reading)
    del parts
    counts = dict.fromkeys(COUNT_NAMES, 0)
    counts["records"], counts["aggregates"] = records, aggregates
    uuids = rows.uuid.tolist()
    index = last_of_each(uuids)
    if index is not None:
        counts["duplicate_uuid"] = len(uuids) - len(index)
    keep = np.arange(len(uuids)) if index is None else np.asarray(index, dtype=np.intp)
    good = np.isfinite(rows.start_ms[keep])
    counts["bad_timestamp"] = int(good.size - np.count_nonzero(good))
    if index is not None or counts["bad_timestamp"]:
        rows = rows.select(keep[good])
    rows.latency = rows.latency - rows.start_ms
    rows.scratch = rows.start_ms
    rows.start_ms = rows.start_ms.astype(np.int64)
    return finish_columns(rows, counts, reading)


def _inferred(reading: Reading, names: Sequence[str]) -> Reading:
    """The reading with inferred feature names: those it names categorical stay so, the rest are numeric."""
    categorical = tuple(n for n in names if n in set(reading.categorical))
    numeric = tuple(n for n in names if n not in set(categorical))
    return Reading(numeric, categorical, reading.task, reading.classes, reading.mapping, reading.positive)


def _empty_rows(reading: Reading) -> RawRows:
    empty = np.empty(0)
    objects = np.empty(0, dtype=object)
    return RawRows(
        objects,
        empty,
        empty.copy(),
        objects.copy(),
        empty.copy(),
        empty.copy(),
        np.empty((0, len(reading.numeric))),
        categories={name: objects.copy() for name in reading.categorical},
    )


def decode_dump(
    data: Any,
    spec: ModelConfig | Sequence[str] | Reading | None = None,
    prediction_key: str = "prediction",
    label_key: str = "final_label",
    features_key: str = "input_features",
    probability_key: str = "probability",
    probabilities_key: str = "probabilities",
    discover_classes: bool = False,
    infer_features: bool | None = None,
) -> Columns:
    """Columns of a ``read_metrics`` dump, equal to ``records_to_columns(json.loads(data)["metrics"], ...)``.

    Well-formed dumps are decoded by msgspec into typed records that hold only the fields
    read (uuid, times, CRN, prediction, label, probabilities, features), several times faster
    than building every object; any other dump takes the general path (every field parsed,
    every oddity counted by ``records_to_columns``).

    Args:
        data: the JSON text (bytes, or a buffer such as a memory map).
        spec: the model spec, a list of numeric feature names, or a reading; None: numeric
            features inferred, classes ``[0, 1]``.
        prediction_key, label_key, features_key, probability_key, probabilities_key: the
            metric keys, as ``records_to_columns`` takes them.
        discover_classes: a classifier's classes are those found in the data.
        infer_features: the feature names are every key seen in the features of the first
            ``FEATURE_SCAN`` records that have them, sorted (those the spec names categorical
            are read so, the others as numbers); default: when ``spec`` is None.

    Returns:
        The columns.

    Raises:
        DataError: not JSON, not ``{"metrics": [...]}``, or the spec's classes are ambiguous.
    """
    infer = spec is None if infer_features is None else infer_features
    reading = Reading.of(() if spec is None else spec, discover_classes)
    keys = Keys(prediction_key, label_key, features_key, probability_key, probabilities_key)
    for cut in (True, False):  # in pieces; whole (other top-level keys); else the general path
        try:
            return _fast_columns(data, reading, infer, keys, cut)
        except (msgspec.ValidationError, msgspec.DecodeError, *_FAST_ERRORS):
            pass
    records = _parsed(data)
    if infer:
        names = feature_names_of(
            (r.get(METRICS_KEY) or {}).get(features_key)
            if isinstance(r, dict) and isinstance(r.get(METRICS_KEY), dict)
            else None
            for r in records
        )
        reading = _inferred(reading, names)
    return records_to_columns(
        records,
        reading,
        prediction_key=prediction_key,
        label_key=label_key,
        features_key=features_key,
        probability_key=probability_key,
        probabilities_key=probabilities_key,
    )
