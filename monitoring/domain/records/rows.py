"""The rows both decoding paths produce (``RawRows``), and the array helpers they share."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Slice length of the chunked checks (their temporaries stay small).
_STEP = 1 << 16


def plain_pages(*shape: int) -> np.ndarray:
    """A zeroed float64 array in memory from ``bytearray`` (malloc) rather than numpy's allocator.

    numpy advises the kernel to back arrays of 4 MB and more with transparent huge pages. Where
    the kernel then compacts memory at fault time (THP ``defrag`` set to ``madvise``, as on the
    bench machine), the first touch of such an array costs several times more than of ordinary
    pages: about 0.1 s over the columns of 1M records. The array behaves the same otherwise.
    """
    return np.frombuffer(bytearray(8 * math.prod(shape)), dtype=np.float64).reshape(shape)


def nondecreasing(values: np.ndarray) -> bool:
    """``not (values[1:] < values[:-1]).any()``, in slices (no temporary as long as ``values``)."""
    chunks = (values[lo : lo + _STEP + 1] for lo in range(0, values.size - 1, _STEP))  # overlapping by one
    return not any(bool((c[1:] < c[:-1]).any()) for c in chunks)


def all_finite(values: np.ndarray) -> bool:
    """True when every value is finite: their sum is then finite (else NaN or infinite, or it
    overflowed: False either way, which only costs the exact check). No temporary array."""
    with np.errstate(all="ignore"):
        return math.isfinite(np.add.reduce(values, axis=None))


def has_repeats(ordered: np.ndarray) -> bool:
    """Whether a sorted array holds two equal neighbours, in slices."""
    chunks = (ordered[lo : lo + _STEP + 1] for lo in range(0, ordered.size - 1, _STEP))
    return any(bool((c[1:] == c[:-1]).any()) for c in chunks)


def without_empty(items: list, uuids: list) -> tuple[list, list, int]:
    """Drop the positions where the uuid is "" (aggregates) by slicing between them (C-speed scans)."""
    out_items, out_uuids, begin, at, skipped = [], [], 0, -1, 0
    try:
        while True:
            at = uuids.index("", at + 1)
            out_items.extend(items[begin:at])
            out_uuids.extend(uuids[begin:at])
            begin, skipped = at + 1, skipped + 1
    except ValueError:
        pass
    if not skipped:
        return items, uuids, 0
    return out_items + items[begin:], out_uuids + uuids[begin:], skipped


@dataclass
class RawRows:
    """The rows of one decoding path, before ``columns.finish_columns`` reads their values as the spec says.

    Attributes:
        uuid: prediction uuids (object array of str).
        start_ms: start times (int64).
        latency: end - start (float64; modified in place by ``finish_columns``).
        crn: deployment CRNs (object array of str).
        prediction: float64 (plain numbers, NaN when absent) or a list of the raw values.
        label: as ``prediction``.
        features: numeric features (n, k) float64.
        features_bad: cells of ``features`` that were present but unreadable (None: none).
        categories: categorical feature name -> object array of str (None when missing).
        categories_bad: categorical feature name -> its unreadable values (names with none left out).
        proba: probabilities: (n,) of the positive class, (n, c), or None when not read.
        scratch: a float64 buffer as long as the rows, free for reuse (None: none).
    """

    uuid: np.ndarray
    start_ms: np.ndarray
    latency: np.ndarray
    crn: np.ndarray
    prediction: Any
    label: Any
    features: np.ndarray
    features_bad: np.ndarray | None = None
    categories: dict[str, np.ndarray] = field(default_factory=dict)
    categories_bad: dict[str, np.ndarray] = field(default_factory=dict)
    proba: np.ndarray | None = None
    scratch: np.ndarray | None = None

    def select(self, index: np.ndarray) -> RawRows:
        """The rows at ``index`` (an integer index into every column)."""
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        listed = index.tolist()
        return RawRows(
            self.uuid[index],
            self.start_ms[index],
            self.latency[index],
            self.crn[index],
            pick(self.prediction) if isinstance(self.prediction, np.ndarray) else [self.prediction[i] for i in listed],
            pick(self.label) if isinstance(self.label, np.ndarray) else [self.label[i] for i in listed],
            self.features[index],
            pick(self.features_bad),
            {k: v[index] for k, v in self.categories.items()},
            {k: v[index] for k, v in self.categories_bad.items()},
            pick(self.proba),
        )


def _number(value: Any, single_lists: bool) -> float:
    """One value to float (None -> NaN); one-element lists are unwrapped when allowed; else raise."""
    if single_lists and isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if value is None:
        return math.nan
    if isinstance(value, (dict, list, tuple)):
        raise ValueError("not a single number")
    return float(value)


def floats(values: list, single_lists: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
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


def blank_unreadable(arr: np.ndarray, bad: np.ndarray | None) -> np.ndarray:
    """Mask of values that were present but unusable: unreadable or infinite (those become NaN)."""
    mask = np.isinf(arr) if bad is None else (bad | np.isinf(arr))
    if mask.any():
        arr[mask] = math.nan
    return mask


def last_of_each(uuids: list) -> list[int] | None:
    """Indexes of the last copy of each uuid, in input order; None when all are distinct."""
    hashes = np.sort(np.fromiter(map(hash, uuids), dtype=np.int64, count=len(uuids)))
    if not (hashes[1:] == hashes[:-1]).any():  # equal strings hash equally: no equal hashes, no duplicates
        return None
    last = dict(zip(uuids, range(len(uuids))))
    return sorted(last.values()) if len(last) != len(uuids) else None
