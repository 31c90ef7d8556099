"""Model requests from data rows (each feature as JSON, a number or a string by its kind, null when missing), and
the key a request or a tracked record is matched by."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from monitoring.config.model_spec import ModelConfig


def _json_value(value: Any, numeric: bool) -> float | str | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return float(value) if numeric else str(value)


def requests_of(frame: pd.DataFrame, spec: ModelConfig) -> list[dict[str, Any]]:
    """One request body per row: ``{feature: number | string | None}`` in the spec's order.

    Args:
        frame: checked rows (``sources.schema.conform``): numeric features float64, categorical
            ones str or None.
        spec: the model spec.

    Returns:
        JSON-safe dicts, as the model endpoint receives them and the serving function tracks them.
    """
    columns = [
        [_json_value(v, spec.kinds[name] == "numeric") for v in frame[name].tolist()] for name in spec.feature_names
    ]
    names = spec.feature_names
    return [dict(zip(names, row)) for row in zip(*columns)] if columns else [{} for _ in range(len(frame))]


def _value_key(value: Any) -> float | str | None:
    """A tracked feature value as matched: a number as a float, a category as text, a missing one as None.

    Raises:
        TypeError: a value no request body holds (a list, an object).
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a feature value: {type(value).__name__}")
    return float(value)


def values_key(request: dict[str, Any], names: tuple[str, ...]) -> tuple[tuple[str, float | str | None], ...] | None:
    """A request's (or a record's tracked) feature values by ``names``, as compared; None when one is missing."""
    try:
        return tuple((n, _value_key(request[n])) for n in names)
    except (KeyError, TypeError):
        return None
