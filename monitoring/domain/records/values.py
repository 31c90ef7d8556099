"""Tracked values read as the model spec says: class indexes, regression targets, category text, probabilities."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from monitoring.core.errors import DataError

if TYPE_CHECKING:  # the spec's pydantic models load only where a config is read, not to read records
    from monitoring.config.model_spec import ClassValue, ModelConfig

#: ``model_spec.DEFAULT_CLASSES``: the classes of a classifier whose config names none.
DEFAULT_CLASSES: tuple = (0, 1)

_NUMBERS = (int, float)
#: Largest magnitude of a float read as a whole number (beyond it floats skip integers).
_WHOLE_LIMIT = 2.0**53


def number_text(value: float) -> str:
    """A number as text: whole numbers without a fraction (``3.0`` and ``3`` are ``"3"``), others by ``repr``."""
    if math.isfinite(value) and value == round(value) and abs(value) < _WHOLE_LIMIT:
        return str(int(value))
    return repr(float(value))


def _keys(value: Any) -> tuple[str, ...]:
    """The texts a raw scalar may be known by, first match wins: its own text, then its number's text."""
    if value.__class__ is str:
        try:
            number = float(value)
        except ValueError:
            return (value,)
        alt = number_text(number) if math.isfinite(number) else value
        return (value,) if alt == value else (value, alt)
    if isinstance(value, bool):
        return ("true" if value else "false", "1" if value else "0")
    return (number_text(float(value)),)


def _scalar(value: Any) -> Any:
    """A one-element list unwrapped (MLflow-style ``[1]``); anything else as it is."""
    if value.__class__ in (list, tuple) and len(value) == 1:
        return value[0]
    return value


@dataclass(frozen=True)
class Reading:
    """What ``records_to_columns`` reads, taken from the model spec.

    Attributes:
        numeric: numeric feature names (read as float64).
        categorical: categorical feature names (read as text).
        task: ``classification`` or ``regression``.
        classes: the classes, in order (empty for regression); None: found in the data.
        mapping: raw value text -> class (labels and predictions go through it first).
        positive: the positive class of a binary classifier (None: the last class).
    """

    numeric: tuple[str, ...]
    categorical: tuple[str, ...] = ()
    task: str = "classification"
    classes: tuple[ClassValue, ...] | None = DEFAULT_CLASSES
    mapping: Mapping[str, ClassValue] = field(default_factory=dict)
    positive: ClassValue | None = None

    @classmethod
    def of(cls, spec: ModelConfig | Sequence[str] | Reading, discover_classes: bool = False) -> Reading:
        """The reading of a model spec; a plain list of names means numeric features and classes ``[0, 1]``.

        Args:
            spec: the model spec, a list of feature names, or a reading (returned as is).
            discover_classes: take a classifier's classes from the data instead of the spec.

        Raises:
            DataError: two classes share one text (``1`` and ``"1"``), so a tracked value could be either.
        """
        if isinstance(spec, Reading):
            reading = spec
        elif hasattr(spec, "numeric_features"):  # a ModelConfig
            reading = cls(
                tuple(spec.numeric_features),
                tuple(spec.categorical_features),
                spec.task,
                tuple(spec.classes),
                dict(spec.label.mapping),
                spec.positive_class,
            )
        else:
            reading = cls(tuple(str(n) for n in spec))
        if discover_classes and reading.is_classifier:
            reading = cls(reading.numeric, reading.categorical, reading.task, None, reading.mapping, reading.positive)
        if reading.classes:
            texts = [_keys(c)[0] for c in reading.classes]
            if len(set(texts)) != len(texts):
                raise DataError(
                    f"classes {list(reading.classes)}: two classes are written alike, so labels are ambiguous"
                )
        return reading

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    def with_classes(self, classes: Sequence[ClassValue]) -> Reading:
        """This reading with the classes found in the data."""
        return Reading(self.numeric, self.categorical, self.task, tuple(classes), self.mapping, self.positive)

    def positive_index(self) -> int | None:
        """Index of the positive class of a binary classifier (the last class unless configured); else None."""
        if not self.classes or len(self.classes) != 2:
            return None
        if self.positive is None:
            return 1
        keys = [_keys(c)[0] for c in self.classes]
        text = _keys(self.positive)[0]
        return keys.index(text) if text in keys else 1

    def _lookup(self) -> dict[str, int]:
        """Text -> class index: the classes' own texts, then the mapping's keys (the mapping wins)."""
        index = {_keys(c)[0]: i for i, c in enumerate(self.classes or ())}
        for raw, target in self.mapping.items():
            pos = index.get(_keys(target)[0])
            if pos is not None:
                index[str(raw)] = pos
        return index

    def float_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The numbers that name a class, sorted, and each one's class index (for float columns)."""
        pairs: dict[float, int] = {}
        for text, pos in self._lookup().items():
            try:
                number = float(text)
            except ValueError:
                continue
            if math.isfinite(number) and number_text(number) == text:
                pairs[number] = pos
        values = np.array(sorted(pairs), dtype=np.float64)
        return values, np.array([pairs[v] for v in values.tolist()], dtype=np.float64)


def class_indexes_of_floats(
    values: np.ndarray, reading: Reading, scratch: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Class index of each number (float64; NaN where absent, -1 where it names no class).

    The usual case, classes ``0..k-1`` tracked as themselves, is checked without a copy (with
    ``scratch``, a float64 buffer as long as ``values`` that is overwritten, without a temporary).

    Returns:
        ``(indexes, not_a_class)``: the indexes (``values`` itself when nothing changes) and a
        mask of present values that name no class (None when there are none).
    """
    numbers, index = reading.float_table()
    if not values.size:
        return values, None
    low, high = np.fmin.reduce(values), np.fmax.reduce(values)  # skip NaN
    identity = numbers.size and np.array_equal(numbers, index) and numbers[0] == 0
    if identity and not (low < 0 or high > numbers[-1]) and _all_whole(values, scratch):
        return values, None  # NaN-only columns land here too (low, high are NaN)
    out = np.full(values.shape, -1.0)
    if numbers.size <= 8:
        for number, pos in zip(numbers.tolist(), index.tolist()):
            out[values == number] = pos
    elif numbers.size:
        at = np.minimum(np.searchsorted(numbers, values), numbers.size - 1)
        hit = numbers[at] == values
        out[hit] = index[at[hit]]
    missing = np.isnan(values)
    out[missing] = math.nan
    bad = (out < 0) & ~missing
    return out, (bad if bad.any() else None)


def _all_whole(values: np.ndarray, scratch: np.ndarray | None) -> bool:
    """Whether every non-NaN value is a whole number (the values are finite)."""
    scratch = np.empty_like(values) if scratch is None else scratch[: values.size]
    np.round(values, out=scratch)
    np.subtract(scratch, values, out=scratch)
    return not np.fmax.reduce(np.abs(scratch, out=scratch)) > 0


def class_indexes_of_values(values: list, reading: Reading) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class index of each raw value (any JSON value), as ``class_indexes_of_floats`` does for numbers.

    Returns:
        ``(indexes, not_a_class, unreadable)``: float64 indexes (NaN absent or unreadable, -1 no
        class), present scalars that name no class, and values that are no scalar at all (a dict,
        a list of several values).
    """
    import pandas as pd  # a hash table over the distinct values; only this general path needs it

    n = len(values)
    if not set(map(type, values)) <= {str, int, float, bool, type(None)}:
        values = [_scalar(v) for v in values]
    lookup = reading._lookup()
    out = np.full(n, math.nan)
    unreadable = np.zeros(n, dtype=bool)
    arr = np.empty(n, dtype=object)
    arr[:] = values
    try:
        codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    except TypeError:  # an unhashable value among them
        scalars = [v if v is None or v.__class__ in (str, int, float, bool) else _Unreadable for v in values]
        arr[:] = scalars
        codes, uniques = pd.factorize(arr, use_na_sentinel=True)
    table = np.full(len(uniques) + 1, math.nan)  # the last slot: NaN for the sentinel -1
    bad_code = np.zeros(len(uniques) + 1, dtype=bool)
    for code, value in enumerate(uniques.tolist()):
        if value is _Unreadable or not (value.__class__ is str or isinstance(value, (*_NUMBERS, bool))):
            bad_code[code] = True
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        table[code] = next((lookup[k] for k in _keys(value) if k in lookup), -1.0)
    out = table[codes]
    unreadable = bad_code[codes]
    not_a_class = out < 0
    return out, not_a_class, unreadable


class _UnreadableValue:
    """Stands for a value that is no scalar (hashable, unlike the dict or list it replaces)."""

    def __repr__(self) -> str:
        return "<unreadable>"


_Unreadable = _UnreadableValue()


def discover_classes(*columns: np.ndarray | list) -> list[ClassValue]:
    """The classes found among labels and predictions: the whole numbers (numbers as text count;
    at least ``[0, 1]`` when only those occur), or every distinct text when no number occurs.

    Args:
        columns: float64 arrays or raw value lists.
    """
    import pandas as pd

    numbers: set[int] = set()
    texts: set[str] = set()
    for column in columns:
        if isinstance(column, np.ndarray) and column.dtype.kind == "f":
            values = pd.unique(column[np.isfinite(column)]).tolist()
        else:
            values = {_scalar(v) for v in column if v is not None and v.__class__ not in (dict, list, tuple)}
        for v in values:
            if isinstance(v, str):
                key = _keys(v)[-1]
                try:
                    v = int(key)
                except ValueError:
                    texts.add(v)
                    continue
            if isinstance(v, (*_NUMBERS, bool)) and math.isfinite(float(v)) and float(v) == round(float(v)):
                numbers.add(int(v))
    if not numbers and texts:
        return sorted(texts)
    return sorted(numbers | {0, 1}) if numbers <= {0, 1} else sorted(numbers)


def category_labels(values: Any) -> tuple[np.ndarray, np.ndarray]:
    """Values as category labels (str) and a mask of missing ones (None, NaN, pd.NA).

    Whole floats read as integers (``3.0`` and ``3`` are the category ``"3"``, as a JSON
    number and a CSV integer column give them); other values by ``str``.

    Returns:
        ``(labels, missing)``: object array of str (missing entries hold ""), bool array.
    """
    import pandas as pd  # loaded on first use: reading numeric-only windows needs none

    series = pd.Series(values if isinstance(values, np.ndarray) else list(values), dtype=object)
    missing = series.isna().to_numpy()
    present = series[~missing]
    kind = pd.api.types.infer_dtype(present, skipna=False)
    if kind == "string":
        text = present
    elif kind in ("floating", "integer", "mixed-integer-float"):
        numbers = present.to_numpy(dtype=np.float64)
        whole = np.isfinite(numbers) & (numbers == np.round(numbers)) & (np.abs(numbers) < 2**53)
        text = pd.Series(numbers.astype(str), dtype=object, index=present.index)
        text[whole] = numbers[whole].astype(np.int64).astype(str)
    else:
        text = present.astype(str)
    labels = np.full(series.size, "", dtype=object)
    labels[~missing] = text.to_numpy(dtype=object)
    return labels, missing


def category_text(values: list) -> tuple[np.ndarray, np.ndarray | None]:
    """Categorical feature values as text (object array of str, None when missing) and a mask of
    unreadable ones (a dict or a list: None too; None when there are none)."""
    n = len(values)
    if set(map(type, values)) <= {str, type(None)}:
        arr = np.empty(n, dtype=object)
        arr[:] = values
        return arr, None
    bad = np.fromiter((v.__class__ in (dict, list, tuple) for v in values), dtype=bool, count=n)
    clean = [None if b else v for v, b in zip(values, bad.tolist())]
    labels, missing = category_labels(clean)
    labels[missing] = None
    return labels, (bad if bad.any() else None)


def probability_matrix(dicts: list, reading: Reading) -> np.ndarray:
    """``{str(class): probability}`` dicts (or None) as a float64 matrix (n, n_classes); NaN where absent."""
    keys = [_keys(c)[0] for c in reading.classes or ()]
    out = np.full((len(dicts), len(keys)), math.nan)
    for i, d in enumerate(dicts):
        if d.__class__ is dict:
            for j, key in enumerate(keys):
                value = d.get(key)
                if isinstance(value, _NUMBERS) and not isinstance(value, bool):
                    out[i, j] = value
    out[~np.isfinite(out)] = math.nan
    return out
