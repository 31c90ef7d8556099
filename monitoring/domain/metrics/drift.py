"""Per-feature reference statistics fitted on training data (numeric and categorical), and drift against them."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from monitoring.core.errors import DataError
from monitoring.domain.metrics.categories import CategoricalReference, js_from_counts, psi_from_counts

if TYPE_CHECKING:
    import pandas as pd

#: Number of quantile bins for PSI (open-ended first and last bins).
N_BINS = 10
#: Largest sorted sample kept per feature for the KS statistic.
MAX_SAMPLE = 2000
#: Floor for bin proportions so an empty bin gives a large but finite PSI term.
PSI_EPSILON = 1e-4
#: 2 added categorical features (``kind``); version 1 files (numeric only) still read.
FORMAT_VERSION = 2
NUMERIC, CATEGORICAL = "numeric", "categorical"
KINDS = (NUMERIC, CATEGORICAL)


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
    arr: np.ndarray = np.asarray(values, dtype=float).ravel()
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        raise DataError(f"{what}: no finite values to compare with the reference")
    return arr


def _numbers(column: pd.Series, name: str) -> np.ndarray:
    """A numeric feature's reference values; text in it is an error naming the feature and first row."""
    if column.dtype.kind in "biuf":
        return column.to_numpy(dtype=np.float64)
    import pandas as pd  # loaded only to fit: comparing windows with a reference needs none

    numbers = pd.to_numeric(column, errors="coerce")
    bad = (numbers.isna() & column.notna()).to_numpy()
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"reference column {name!r}: expected numbers for a numeric feature, found {column.iloc[first]!r} "
            f"(row {first}, {int(bad.sum())} such rows); declare the feature categorical if it is one"
        )
    return numbers.to_numpy(dtype=np.float64)


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
    """Reference statistics of every monitored feature, fitted once on the training data.

    Numeric features (``FeatureReference``) get PSI over quantile bins and KS; categorical ones
    (``CategoricalReference``) PSI over categories and the Jensen-Shannon distance: bounded in
    [0, 1] and, unlike a chi-square p-value, not driven to "drift" by window size alone (a
    million rows make any trivial difference significant), so one threshold fits every window.
    """

    features: dict[str, FeatureReference | CategoricalReference]

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, features: Sequence[str], kinds: Mapping[str, str] | None = None
    ) -> ReferenceStats:
        """Fit each feature: quantile bins, a sorted sample and moments, or category frequencies.

        Args:
            frame: training data.
            features: the columns to describe.
            kinds: ``numeric`` or ``categorical`` per feature; a feature not named is numeric.

        Returns:
            The fitted statistics.

        Raises:
            DataError: a column is missing, a numeric one holds text or has no finite values, a
                categorical one has no values, or ``kinds`` names an unknown kind or feature.
        """
        kinds = dict(kinds or {})
        unknown = sorted(set(kinds) - set(features))
        if unknown:
            raise DataError(f"feature kinds given for features not described: {', '.join(unknown)}")
        fitted: dict[str, FeatureReference | CategoricalReference] = {}
        for name in features:
            if name not in frame.columns:
                raise DataError(
                    f"reference data has no column {name!r} (columns: {', '.join(map(str, frame.columns))})"
                )
            kind = kinds.get(name, NUMERIC)
            what = f"reference column {name!r}"
            if kind == CATEGORICAL:
                fitted[name] = CategoricalReference.fit(frame[name].to_numpy(), what)
            elif kind == NUMERIC:
                fitted[name] = _fit_feature(_finite(_numbers(frame[name], name), what))
            else:
                raise DataError(f"feature {name!r}: unknown kind {kind!r} (expected one of: {', '.join(KINDS)})")
        return cls(fitted)

    @property
    def kinds(self) -> dict[str, str]:
        """``numeric`` or ``categorical`` per feature."""
        return {n: CATEGORICAL if isinstance(r, CategoricalReference) else NUMERIC for n, r in self.features.items()}

    def _get(self, feature: str) -> FeatureReference | CategoricalReference:
        try:
            return self.features[feature]
        except KeyError:
            raise DataError(
                f"no reference statistics for feature {feature!r} (known: {', '.join(self.features)})"
            ) from None

    def _numeric(self, feature: str, measure: str) -> FeatureReference:
        ref = self._get(feature)
        if isinstance(ref, CategoricalReference):
            raise DataError(f"feature {feature!r} is categorical: {measure} applies to numeric features only")
        return ref

    def _categorical(self, feature: str, measure: str) -> CategoricalReference:
        ref = self._get(feature)
        if not isinstance(ref, CategoricalReference):
            raise DataError(f"feature {feature!r} is numeric: {measure} applies to categorical features only")
        return ref

    def _category_counts(self, ref: CategoricalReference, feature: str, values: Any) -> np.ndarray:
        counts = ref.bucket_counts(values)
        if counts.sum() == 0:
            raise DataError(f"feature {feature!r}: no values to compare with the reference")
        return counts

    def psi(self, feature: str, values: Any) -> float:
        """Population stability index of ``values`` against the reference buckets.

        ``sum((a - e) * ln(a / e))`` over quantile bins (numeric) or categories plus "other" and
        "unseen" (categorical), with proportions floored at ``PSI_EPSILON``; non-finite numeric
        and missing categorical values are ignored. Rule of thumb: < 0.1 stable, > 0.25 shifted.

        Args:
            feature: feature name.
            values: current values.

        Returns:
            The PSI (>= 0).

        Raises:
            DataError: unknown feature, or no usable values.
        """
        ref = self._get(feature)
        if isinstance(ref, CategoricalReference):
            return float(psi_from_counts(ref.expected, self._category_counts(ref, feature, values), PSI_EPSILON)[0])
        current = _finite(values, f"feature {feature!r}")
        counts = np.bincount(ref.bin_index(current), minlength=ref.expected.size)
        return float(psi_from_counts(ref.expected, counts, PSI_EPSILON))

    def ks(self, feature: str, values: np.ndarray) -> float:
        """Two-sample KS statistic of a numeric feature's ``values`` against the reference sample.

        Args:
            feature: feature name.
            values: current values (non-finite ones are ignored).

        Returns:
            The statistic in [0, 1].

        Raises:
            DataError: unknown or categorical feature, or no finite values.
        """
        ref = self._numeric(feature, "KS")
        return ks_statistic(ref.sample, _finite(values, f"feature {feature!r}"))

    def js(self, feature: str, values: Any) -> float:
        """Jensen-Shannon distance (base 2, in [0, 1]) of a categorical feature's ``values`` from the reference.

        Args:
            feature: feature name.
            values: current values (missing ones are ignored).

        Returns:
            The distance: 0 for the same distribution, 1 for disjoint ones.

        Raises:
            DataError: unknown or numeric feature, or no values.
        """
        ref = self._categorical(feature, "Jensen-Shannon distance")
        return float(js_from_counts(ref.expected, self._category_counts(ref, feature, values))[0])

    def drift(self, feature: str, values: Any) -> dict[str, float]:
        """Every drift measure of the feature's kind: ``{"psi", "ks"}`` (numeric) or ``{"psi", "js"}`` (categorical).

        Raises:
            DataError: unknown feature, or no usable values.
        """
        if isinstance(self._get(feature), CategoricalReference):
            return {"psi": self.psi(feature, values), "js": self.js(feature, values)}
        return {"psi": self.psi(feature, values), "ks": self.ks(feature, values)}

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (plain floats and lists); ``from_dict`` reads it back."""
        return {
            "format": FORMAT_VERSION,
            "features": {
                name: ref.to_dict()
                if isinstance(ref, CategoricalReference)
                else {
                    "kind": NUMERIC,
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
        """Rebuild from ``to_dict`` output of this format or version 1 (numeric features only).

        Args:
            data: the mapping (e.g. from an artifact's metadata.json).

        Returns:
            The statistics.

        Raises:
            DataError: naming the feature and key that is missing or malformed, or a format
                newer than this version reads.
        """
        if not isinstance(data, Mapping) or not isinstance(data.get("features"), Mapping):
            raise DataError("reference statistics: expected a mapping with a 'features' mapping")
        version = data.get("format", 1)
        if not isinstance(version, int) or not 1 <= version <= FORMAT_VERSION:
            raise DataError(
                f"reference statistics: format {version!r} is not one this version reads (1 to {FORMAT_VERSION}); "
                "upgrade cml-monitor"
            )
        fitted: dict[str, FeatureReference | CategoricalReference] = {}
        for name, item in data["features"].items():
            kind = item.get("kind", NUMERIC) if isinstance(item, Mapping) else None
            if kind == CATEGORICAL and version >= 2:
                fitted[str(name)] = CategoricalReference.from_dict(item, str(name))
            elif kind == NUMERIC:
                fitted[str(name)] = _numeric_from_dict(item, str(name))
            else:
                raise DataError(f"reference statistics for feature {name!r}: unknown kind {kind!r}")
        return cls(fitted)


def _numeric_from_dict(item: Mapping[str, Any], name: str) -> FeatureReference:
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
    return ref
