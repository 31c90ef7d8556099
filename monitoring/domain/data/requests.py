"""Model requests from data rows: each feature as JSON, a number or a string by its kind, null when missing."""

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
