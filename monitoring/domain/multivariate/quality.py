"""A window's data quality against the training reference: per feature, the share of rows missing it, of
numeric values outside the reference's range, and of categorical values the reference never saw."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from monitoring.domain.metrics.categories import UNSEEN, CategoricalReference
from monitoring.domain.metrics.drift import FeatureReference, ReferenceStats
from monitoring.domain.records.columns import Columns


def window_quality(
    columns: Columns, rows: Any, reference: ReferenceStats, counts: Mapping[str, np.ndarray] | None = None
) -> dict[str, dict[str, float]]:
    """``{feature: {"missing", "out_of_range"}}`` (numeric) or ``{"missing", "unseen"}`` (categorical), shares of
    the window's rows; a feature the reference does not describe gets its missing share only. ``counts``: a
    categorical feature's bucket counts of these rows when the drift has them already."""
    out: dict[str, dict[str, float]] = {}
    matrix = columns.features[rows]
    n = matrix.shape[0]
    if n == 0:
        return out
    for j, name in enumerate(columns.feature_names):
        values = matrix[:, j]
        finite = np.isfinite(values)
        item = {"missing": float(1 - finite.mean())}
        ref = reference.features.get(name)
        if isinstance(ref, FeatureReference) and ref.sample.size:
            low, high = ref.sample[0], ref.sample[-1]
            item["out_of_range"] = float(np.count_nonzero(finite & ((values < low) | (values > high))) / n)
        out[name] = item
    for name, values in columns.categories.items():
        ref = reference.features.get(name)
        if isinstance(ref, CategoricalReference):
            found = (counts or {}).get(name)
            found = np.asarray(found if found is not None else ref.bucket_counts(values[rows]))
            item = {
                "missing": float(1 - found.sum() / n),
                "unseen": float(found[..., ref.buckets.index(UNSEEN)].sum() / n),
            }
        else:
            item = {"missing": float(1 - np.count_nonzero(values[rows] != None) / n)}  # noqa: E711
        out[name] = item
    return out
