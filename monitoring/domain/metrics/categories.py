"""Reference distribution of a categorical feature (top-K, "other", "unseen" buckets), and PSI / Jensen-Shannon drift."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.core.errors import DataError
from monitoring.domain.records.values import category_labels

#: Categories kept by name, the most frequent first; the rest share the "other" bucket.
TOP_K = 20
#: Long-tail categories remembered (so they count as "other", not "unseen"), the most frequent first.
MAX_TAIL = 10_000
#: Names of the two buckets after the kept categories, in ``expected`` and in reports.
OTHER, UNSEEN = "(other)", "(unseen)"


def psi_from_counts(expected: np.ndarray, counts: np.ndarray, epsilon: float) -> np.ndarray:
    """PSI of each row of bucket ``counts`` (..., b) against ``expected`` (b,): ``sum((a - e) ln(a / e))``
    with both proportions floored at ``epsilon``; NaN for a row without values."""
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        actual = np.maximum(counts / total, epsilon)
    e = np.maximum(expected, epsilon)
    out = np.sum((actual - e) * np.log(actual / e), axis=-1)
    return np.where(total[..., 0] > 0, out, math.nan)


def js_from_counts(expected: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Jensen-Shannon distance (base 2, in [0, 1]) of each row of ``counts`` from ``expected``; NaN when empty.

    No smoothing: the mixture is positive wherever either side is, so a bucket empty on one
    side (an unseen category) contributes a finite term.
    """
    total = counts.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = counts / total
        m = (p + expected) / 2
        kl_p = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=-1)
        kl_q = np.where(expected > 0, expected * np.log2(expected / m), 0.0).sum(axis=-1)
    divergence = np.clip((kl_p + kl_q) / 2, 0.0, 1.0)
    return np.where(total[..., 0] > 0, np.sqrt(divergence), math.nan)


@dataclass(frozen=True)
class CategoricalReference:
    """Reference distribution of one categorical feature.

    Attributes:
        categories: the kept categories, the most frequent first (at most ``TOP_K``).
        expected: reference proportion of each bucket: the categories, then ``OTHER`` (the
            long tail), then ``UNSEEN`` (0 at fit time; PSI floors it at epsilon).
        tail: the long-tail categories seen at fit time (at most ``MAX_TAIL``).
        open_tail: the tail had more than ``MAX_TAIL`` categories: values not kept by name
            then count as ``OTHER``, since an unseen one cannot be told from a forgotten one.
        n: number of non-missing reference values.
    """

    categories: tuple[str, ...]
    expected: np.ndarray
    tail: frozenset[str]
    open_tail: bool
    n: int

    @classmethod
    def fit(cls, values: Any, what: str, top_k: int = TOP_K) -> CategoricalReference:
        """Count the categories of the training ``values`` (missing ones ignored).

        Raises:
            DataError: no non-missing value (``what`` names the column).
        """
        import pandas as pd

        labels, missing = category_labels(values)
        labels = labels[~missing]
        if labels.size == 0:
            raise DataError(f"{what}: no values to describe (all missing)")
        counts = pd.Series(labels).value_counts(sort=False)
        order = sorted(zip((-counts.to_numpy()).tolist(), counts.index.tolist()))  # count desc, then name
        names = [name for _, name in order]
        freq = np.array([-c for c, _ in order], dtype=np.float64) / labels.size
        kept, rest = names[:top_k], names[top_k:]
        expected = np.concatenate([freq[:top_k], [freq[top_k:].sum(), 0.0]])
        return cls(tuple(kept), expected, frozenset(rest[:MAX_TAIL]), len(rest) > MAX_TAIL, int(labels.size))

    @property
    def buckets(self) -> tuple[str, ...]:
        """Bucket names in ``expected`` order."""
        return (*self.categories, OTHER, UNSEEN)

    def bucket_index(self, values: Any) -> np.ndarray:
        """Bucket of each value (index into ``buckets``), -1 for a missing value."""
        import pandas as pd

        labels, missing = category_labels(values)
        k = len(self.categories)
        index: np.ndarray = pd.Index(self.categories, dtype=object).get_indexer(labels).astype(np.intp)
        rest = (index < 0) & ~missing
        if rest.any():
            known = pd.Index(list(self.tail), dtype=object).get_indexer(labels[rest]) >= 0
            index[rest] = np.where(known | self.open_tail, k, k + 1)
        index[missing] = -1
        return index

    def bucket_counts(self, values: Any, group: np.ndarray | None = None, n_groups: int = 1) -> np.ndarray:
        """Counts per group and bucket, shape (n_groups, len(buckets)); missing values are left out.

        Args:
            values: current values.
            group: group (window) index of each value in ``[0, n_groups)``; None: one group.
            n_groups: number of groups.
        """
        index = self.bucket_index(values)
        b = len(self.categories) + 2
        group = np.zeros(index.size, dtype=np.intp) if group is None else np.asarray(group, dtype=np.intp)
        keep = index >= 0
        return np.bincount(group[keep] * b + index[keep], minlength=n_groups * b).reshape(n_groups, b)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; ``from_dict`` reads it back."""
        return {
            "kind": "categorical",
            "categories": list(self.categories),
            "expected": self.expected.tolist(),
            "tail": sorted(self.tail),
            "open_tail": self.open_tail,
            "n": self.n,
        }

    @classmethod
    def from_dict(cls, item: Mapping[str, Any], name: str) -> CategoricalReference:
        """Rebuild from ``to_dict`` output.

        Raises:
            DataError: naming the feature and what is missing or inconsistent.
        """
        try:
            categories = tuple(item["categories"])
            ref = cls(
                categories,
                np.asarray(item["expected"], dtype=float),
                frozenset(item["tail"]),
                bool(item["open_tail"]),
                int(item["n"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"reference statistics for feature {name!r}: missing or malformed {exc}") from None
        if (
            not all(isinstance(c, str) for c in categories)
            or len(set(categories)) != len(categories)
            or ref.expected.shape != (len(categories) + 2,)
            or not math.isclose(float(ref.expected.sum()), 1.0, abs_tol=1e-6)
        ):
            raise DataError(f"reference statistics for feature {name!r}: inconsistent categories/expected")
        return ref
