"""The one schema check of every data source: features typed by kind, labels through the mapping, times to ms.

Each problem is a ``DataError`` naming the source, the column and the first bad row, so a user
can open the file (or rerun the query) and find it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import DataError

log = logging.getLogger(__name__)

TIME_COLUMN = "start_ms"
#: Values longer than this are cut in messages.
_SHOWN = 60


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def text_of(value: Any) -> str | None:
    """A value as category text: None for missing (None, NaN, blank); whole numbers without ``.0``.

    Raises:
        ValueError: a container, or a float that is not finite.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        if math.isnan(value):
            return None
        if not math.isfinite(value):
            raise ValueError("not finite")
        return str(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, (bool, int)):
        return str(value)
    if value is pd.NaT or value is pd.NA:
        return None
    raise ValueError(f"a {type(value).__name__}, not a single value")


def _first(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def numeric_column(series: pd.Series, where: str, locate: Callable[[int], str]) -> np.ndarray:
    """A column as float64: blanks and None are NaN (missing), text or infinity is an error.

    Raises:
        DataError: naming ``where``, the first bad row and its value.
    """
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = np.isinf(values)
    else:
        raw = series.astype(object)
        blank = raw.isna().to_numpy() | raw.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(dtype=bool)
        values = pd.to_numeric(raw.where(~blank), errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = (np.isnan(values) & ~blank) | np.isinf(values)
    if bad.any():
        i = _first(bad)
        raise DataError(
            f"{where} holds {shown(series.iloc[i])} at {locate(i)} ({int(bad.sum())} such rows): "
            "expected a number (blank for missing)"
        )
    return values


def text_column(series: pd.Series, where: str, locate: Callable[[int], str]) -> np.ndarray:
    """A column as an object array of str (None for missing).

    Raises:
        DataError: naming ``where`` and the first value that is no single value.
    """
    out = np.empty(len(series), dtype=object)
    for i, value in enumerate(series.astype(object).tolist()):
        try:
            out[i] = text_of(value)
        except ValueError as exc:
            raise DataError(f"{where} holds {shown(value)} at {locate(i)}: {exc}, expected text") from None
    return out


def label_column(series: pd.Series, spec: ModelConfig, where: str, locate: Callable[[int], str]) -> np.ndarray:
    """Labels as the spec's class values (through ``label.mapping``) or floats; None/NaN where missing.

    Raises:
        DataError: naming ``where``, the first value outside the classes and mapping (or text in a
            regression target), and what was expected.
    """
    if not spec.is_classifier:
        return numeric_column(series, where, locate)
    by_text = {str(c): c for c in spec.classes}
    by_text.update({raw: cls for raw, cls in spec.label.mapping.items()})
    texts = text_column(series, where, locate)
    out = np.empty(len(texts), dtype=object)
    for i, text in enumerate(texts.tolist()):
        if text is None:
            out[i] = None
            continue
        cls = by_text.get(text)
        if cls is None:
            mapped = f" or a key of model.label.mapping {sorted(spec.label.mapping)}" if spec.label.mapping else ""
            raise DataError(
                f"{where} holds {shown(series.iloc[i])} at {locate(i)}: expected one of model.label.classes "
                f"{spec.classes}{mapped}"
            )
        out[i] = cls
    return out


def event_times(series: pd.Series, fmt: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Times as epoch ms (int64) and a mask of the unreadable ones (set to 0): datetimes, text, epoch ms."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        ms = np.where(bad, 0, values).astype(np.int64)
    else:
        parsed = pd.to_datetime(series, format=fmt or "ISO8601", utc=True, errors="coerce")
        bad = parsed.isna().to_numpy()
        ms = np.where(bad, 0, parsed.to_numpy(dtype="datetime64[ms]").astype(np.int64, copy=False))
    return ms.astype(np.int64), bad


def time_column(series: pd.Series, fmt: str | None, where: str, locate: Callable[[int], str]) -> np.ndarray:
    """Times as epoch ms (int64): datetimes, text (ISO-8601 or ``fmt``) or numbers (already epoch ms).

    Raises:
        DataError: naming ``where`` and the first time that cannot be read (or is missing).
    """
    ms, bad = event_times(series, fmt)
    if bad.any():
        i = _first(bad)
        expected = f"a time in the format {fmt!r}" if fmt else "a date or time (ISO-8601) or epoch milliseconds"
        raise DataError(f"{where} holds {shown(series.iloc[i])} at {locate(i)}: expected {expected}")
    return ms


def _label_dtype(values: np.ndarray, spec: ModelConfig) -> np.ndarray:
    if spec.is_classifier and all(isinstance(c, int) for c in spec.classes):
        return values.astype(np.int64)
    return values


def conform(
    frame: pd.DataFrame,
    spec: ModelConfig,
    source: str,
    locate: Callable[[int], str] | None = None,
    *,
    with_label: bool = True,
    times: np.ndarray | None = None,
) -> pd.DataFrame:
    """Check a source's rows against the model spec and type them as every consumer expects.

    Args:
        frame: the rows as read (any column types; extra columns are ignored).
        spec: the model spec.
        source: names the source in messages (``data.training (csv examples/churn/data/x.csv)``).
        locate: row position -> where it is (``row 12 of x.csv``); default ``row <position + 1>``.
        with_label: the label column is required (training data) or not (rows to replay).
        times: each row's time in epoch ms (the source's ``time_column``, read), kept as ``start_ms``.

    Returns:
        A frame with the feature columns (float64 numeric, object str/None categorical), the label
        column (class values or float64; rows without a label dropped and logged) and
        ``start_ms`` from ``times`` (or when the input has it), index reset.

    Raises:
        DataError: a configured feature or the label is missing; text in a numeric feature; a
            label outside the classes and mapping; naming the source, column and first bad row.
    """
    where_row = locate or (lambda i: f"row {i + 1}")
    label = spec.label.name
    needed = [*spec.feature_names, *([label] if with_label else [])]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        what = ", ".join(f"{c!r} ({'label' if c == label else spec.kinds[c] + ' feature'})" for c in missing)
        columns = ", ".join(map(str, frame.columns[:40])) + (", ..." if len(frame.columns) > 40 else "")
        raise DataError(f"{source}: has no column {what} that the model spec names (columns: {columns})")
    out = {}
    for name in spec.feature_names:
        where = f"{source}: column {name!r} ({spec.kinds[name]} feature)"
        reader = numeric_column if spec.kinds[name] == "numeric" else text_column
        out[name] = reader(frame[name], where, where_row)
    if with_label:
        kind = "class label" if spec.is_classifier else "numeric target"
        out[label] = label_column(frame[label], spec, f"{source}: column {label!r} ({kind})", where_row)
    if times is not None:
        out[TIME_COLUMN] = np.asarray(times, dtype=np.int64)
    elif TIME_COLUMN in frame.columns:
        out[TIME_COLUMN] = frame[TIME_COLUMN].to_numpy(dtype=np.int64)
    # object columns stay object (str or None), not pandas' string dtype: the contract every source keeps
    result = pd.DataFrame({k: pd.Series(v, dtype=v.dtype) for k, v in out.items()}, columns=list(out))
    if with_label:
        unlabelled = pd.isna(result[label]).to_numpy()
        if unlabelled.any():
            log.warning("%s: %d rows without a label are left out", source, int(unlabelled.sum()))
            result = result[~unlabelled].reset_index(drop=True)
        values = _label_dtype(result[label].to_numpy(), spec)
        result[label] = pd.Series(values, dtype=values.dtype)
    return result
