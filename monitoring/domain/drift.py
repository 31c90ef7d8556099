"""Per-feature reference statistics fitted on training data, and PSI / KS drift against them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from monitoring.core.errors import DataError

#: Number of quantile bins for PSI (open-ended first and last bins).
N_BINS = 10
#: Largest sorted sample kept per feature for the KS statistic.
MAX_SAMPLE = 2000
#: Floor for bin proportions so an empty bin gives a large but finite PSI term.
PSI_EPSILON = 1e-4
FORMAT_VERSION = 1


@dataclass(frozen=True)
class FeatureReference:
    """Reference distribution of one feature.

    Attributes:
        edges: interior bin edges (at most ``N_BINS - 1``, strictly increasing); the first and
            last bins are open-ended, so ``len(expected) == len(edges) + 1``.
        expected: proportion of reference values in each bin.
        sample: sorted reference values (at most ``MAX_SAMPLE``, evenly spaced order statistics).
        mean: reference mean.
        std: reference standard deviation (population).
        n: number of finite reference values.
    """

    edges: np.ndarray
    expected: np.ndarray
    sample: np.ndarray
    mean: float
    std: float
    n: int

    def bin_index(self, values: np.ndarray) -> np.ndarray:
        """Bin of each value: the number of interior edges less than or equal to it."""
        return np.searchsorted(self.edges, values, side="right")


def _finite(values: Any, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise DataError(f"{what}: no finite values to compare with the reference")
    return arr


def _fit_feature(values: np.ndarray) -> FeatureReference:
    ordered = np.sort(values)
    quantiles = np.quantile(ordered, np.arange(1, N_BINS) / N_BINS)
    edges = np.unique(quantiles)
    counts = np.bincount(np.searchsorted(edges, ordered, side="right"), minlength=edges.size + 1)
    if ordered.size > MAX_SAMPLE:
        ordered = ordered[np.round(np.linspace(0, ordered.size - 1, MAX_SAMPLE)).astype(np.int64)]
    return FeatureReference(
        edges=edges,
        expected=counts / counts.sum(),
        sample=ordered,
        mean=float(values.mean()),
        std=float(values.std()),
        n=int(values.size),
    )


def ks_statistic(sorted_reference: np.ndarray, values: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two empirical CDFs.

    Args:
        sorted_reference: reference values, sorted ascending.
        values: current values (any order).

    Returns:
        The statistic in [0, 1].
    """
    current = np.sort(values)
    points = np.concatenate([sorted_reference, current])
    cdf_ref = np.searchsorted(sorted_reference, points, side="right") / sorted_reference.size
    cdf_cur = np.searchsorted(current, points, side="right") / current.size
    return float(np.max(np.abs(cdf_ref - cdf_cur)))


@dataclass(frozen=True)
class ReferenceStats:
    """Reference statistics of every monitored feature, fitted once on the training data."""

    features: dict[str, FeatureReference]

    @classmethod
    def fit(cls, frame: pd.DataFrame, features: Sequence[str]) -> ReferenceStats:
        """Fit quantile bins, a sorted sample and moments for each feature.

        Args:
            frame: training data.
            features: the columns to describe.

        Returns:
            The fitted statistics.

        Raises:
            DataError: a column is missing or has no finite values.
        """
        fitted = {}
        for name in features:
            if name not in frame.columns:
                raise DataError(
                    f"reference data has no column {name!r} (columns: {', '.join(map(str, frame.columns))})"
                )
            fitted[name] = _fit_feature(_finite(frame[name].to_numpy(), f"reference column {name!r}"))
        return cls(fitted)

    def _get(self, feature: str) -> FeatureReference:
        try:
            return self.features[feature]
        except KeyError:
            raise DataError(
                f"no reference statistics for feature {feature!r} (known: {', '.join(self.features)})"
            ) from None

    def psi(self, feature: str, values: np.ndarray) -> float:
        """Population stability index of ``values`` against the reference bins.

        ``sum((a - e) * ln(a / e))`` over bins, with proportions floored at ``PSI_EPSILON``;
        non-finite values are ignored. Rule of thumb: < 0.1 stable, > 0.25 shifted.

        Args:
            feature: feature name.
            values: current values.

        Returns:
            The PSI (>= 0).

        Raises:
            DataError: unknown feature, or no finite values.
        """
        ref = self._get(feature)
        current = _finite(values, f"feature {feature!r}")
        counts = np.bincount(ref.bin_index(current), minlength=ref.expected.size)
        actual = np.maximum(counts / current.size, PSI_EPSILON)
        expected = np.maximum(ref.expected, PSI_EPSILON)
        return float(np.sum((actual - expected) * np.log(actual / expected)))

    def ks(self, feature: str, values: np.ndarray) -> float:
        """Two-sample KS statistic of ``values`` against the reference sample.

        Args:
            feature: feature name.
            values: current values (non-finite ones are ignored).

        Returns:
            The statistic in [0, 1].

        Raises:
            DataError: unknown feature, or no finite values.
        """
        ref = self._get(feature)
        return ks_statistic(ref.sample, _finite(values, f"feature {feature!r}"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (plain floats and lists); ``from_dict`` reads it back."""
        return {
            "format": FORMAT_VERSION,
            "features": {
                name: {
                    "edges": ref.edges.tolist(),
                    "expected": ref.expected.tolist(),
                    "sample": ref.sample.tolist(),
                    "mean": ref.mean,
                    "std": ref.std,
                    "n": ref.n,
                }
                for name, ref in self.features.items()
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceStats:
        """Rebuild from ``to_dict`` output.

        Args:
            data: the mapping (e.g. from an artifact's metadata.json).

        Returns:
            The statistics.

        Raises:
            DataError: naming the feature and key that is missing or malformed.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), Mapping):
            raise DataError("reference statistics: expected a mapping with a 'features' mapping")
        fitted = {}
        for name, item in data["features"].items():
            try:
                edges = np.asarray(item["edges"], dtype=float)
                expected = np.asarray(item["expected"], dtype=float)
                sample = np.asarray(item["sample"], dtype=float)
                ref = FeatureReference(
                    edges=edges,
                    expected=expected,
                    sample=sample,
                    mean=float(item["mean"]),
                    std=float(item["std"]),
                    n=int(item["n"]),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"reference statistics for feature {name!r}: missing or malformed {exc}") from None
            if (
                edges.ndim != 1
                or expected.size != edges.size + 1
                or sample.size == 0
                or not math.isclose(float(expected.sum()), 1.0, abs_tol=1e-6)
            ):
                raise DataError(f"reference statistics for feature {name!r}: inconsistent edges/expected/sample")
            fitted[str(name)] = ref
        return cls(fitted)
