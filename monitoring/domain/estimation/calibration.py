"""A monotone map from a model's score to the probability that it is right, fitted on held-out rows.

CBPE needs probabilities that mean what they say: of the rows given 0.8, eight in ten positive.
Few models' scores do, so the score is calibrated first, on the reference held-out rows the
model never trained on (isotonic regression: monotone, no shape assumed), and the map is kept
as a few knots in the model's metadata: applying it is one ``np.interp``, no scikit-learn.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.core.errors import DataError

#: Fewest held-out rows (with a finite score and a label) a calibration is fitted on.
MIN_ROWS = 30


@dataclass(frozen=True)
class Calibration:
    """Knots ``(x, y)`` of a non-decreasing map from score to probability, both in [0, 1]."""

    x: np.ndarray
    y: np.ndarray

    @classmethod
    def fit(cls, score: Any, outcome: Any) -> Calibration:
        """Isotonic regression of ``outcome`` (0/1) on ``score``.

        Raises:
            DataError: fewer than ``MIN_ROWS`` usable rows, or one outcome only.
        """
        from sklearn.isotonic import IsotonicRegression  # fitting only: applying needs numpy

        s = np.asarray(score, dtype=float).ravel()
        o = np.asarray(outcome, dtype=float).ravel()
        keep = np.isfinite(s) & np.isfinite(o)
        s, o = s[keep], o[keep]
        if s.size < MIN_ROWS:
            raise DataError(f"calibration needs at least {MIN_ROWS} held-out rows with a score, got {s.size}")
        if np.unique(o).size < 2:
            raise DataError("calibration needs held-out rows of both outcomes, got one only")
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, o)
        return cls(np.asarray(iso.X_thresholds_, dtype=float), np.asarray(iso.y_thresholds_, dtype=float))

    def __call__(self, score: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (NaN stays NaN; scores outside the knots take the nearest end)."""
        return np.interp(score, self.x, self.y)

    def to_dict(self) -> dict[str, Any]:
        return {"x": self.x.tolist(), "y": self.y.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Calibration:
        x, y = np.asarray(data["x"], dtype=float), np.asarray(data["y"], dtype=float)
        if x.ndim != 1 or x.shape != y.shape or x.size == 0 or np.any(np.diff(x) < 0):
            raise DataError("estimation calibration: expected increasing knots x and as many values y")
        return cls(x, y)
