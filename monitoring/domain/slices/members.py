"""Which slice each row belongs to, for each feature the config cuts by (``slices.by``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from monitoring.config.slices import SliceBy


def _edge(x: float) -> str:
    return f"{x:g}"


def bin_names(feature: str, bins: Sequence[float]) -> list[str]:
    """``tenure<12``, ``tenure 12..24``, ``tenure>=24``: one name per bin of the inner edges."""
    names = [f"{feature}<{_edge(bins[0])}"]
    names += [f"{feature} {_edge(a)}..{_edge(b)}" for a, b in zip(bins, bins[1:])]
    return names + [f"{feature}>={_edge(bins[-1])}"]


def assign(by: SliceBy, values: np.ndarray) -> tuple[list[str], np.ndarray]:
    """The slice names of one cut and each row's slice (-1: in none of them: missing, or a value not listed).

    Args:
        by: the cut.
        values: a numeric feature's floats (NaN: missing) or a categorical one's text (None: missing).
    """
    if by.bins is not None:
        numbers = np.asarray(values, dtype=float)
        index = np.searchsorted(np.asarray(by.bins, dtype=float), numbers, side="right").astype(np.intp)
        index[~np.isfinite(numbers)] = -1
        return bin_names(by.feature, by.bins), index
    text = np.asarray(values, dtype=object)
    present = text[text != None]  # noqa: E711 (elementwise, on an object array)
    listed = list(by.values) if by.values is not None else sorted({str(v) for v in present})
    lookup = {v: i for i, v in enumerate(listed)}
    index = np.fromiter((lookup.get(v, -1) if v is not None else -1 for v in text), dtype=np.intp, count=text.size)
    return [f"{by.feature}={v}" for v in listed], index


def memberships(
    cuts: Sequence[SliceBy], numeric: Mapping[str, np.ndarray], categorical: Mapping[str, np.ndarray], n: int
) -> list[tuple[list[str], np.ndarray]]:
    """Every cut's names and row index; a cut whose feature is absent puts every row in none."""
    out = []
    for by in cuts:
        values = categorical.get(by.feature) if by.bins is None else numeric.get(by.feature)
        if values is None:
            out.append(([], np.full(n, -1, dtype=np.intp)))
        else:
            out.append(assign(by, values))
    return out


def nan_to_none(values: np.ndarray) -> np.ndarray:
    """Text values with float NaN (pandas' missing) as None."""
    return np.array([None if isinstance(v, float) and math.isnan(v) else v for v in values], dtype=object)
