"""Direct loss estimation: a small model of a regressor's expected error, fitted on reference residuals.

Two ridge regressions on the held-out rows, one of ``|error|`` and one of ``error²``, on the
prediction and every feature (numeric ones standardised, each a piecewise-linear function with
knots at its reference quantiles, so that the error may grow away from the reference mass and
grows linearly, not explosively, past its ends; the most frequent categories one-hot). A window's
estimated MAE is the mean of the first over its rows, its RMSE the root of the mean of the second.
Coefficients are kept as plain numbers in the model's metadata: applying them is a matrix product.
The interval is the spread the realized metric would have if the model of the error is right:
the conditional variance of ``|error|`` is ``E[error²] - E[|error|]²``, that of ``error²`` is taken
as for a normal error (``2 E[error²]²``). As CBPE, it is blind to concept drift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.core.errors import DataError
from monitoring.domain.estimation.cbpe import Z95

#: Categories of a feature given a column of their own (the most frequent in the reference).
TOP_CATEGORIES = 10
#: Ridge penalty on standardised terms.
RIDGE = 1.0
#: Standardised values are clipped to this many standard deviations.
CLIP = 6.0
#: Quantiles of the reference where each numeric term may bend.
KNOTS = (0.1, 0.25, 0.5, 0.75, 0.9)
#: Fewest held-out rows a loss model is fitted on.
MIN_ROWS = 30


@dataclass(frozen=True)
class LossModel:
    """Standardisation of the prediction and numeric features, categories one-hot, and two coefficient vectors."""

    numeric: tuple[str, ...]
    centre: np.ndarray
    scale: np.ndarray
    knots: np.ndarray
    categories: dict[str, list[str]]
    abs_coef: np.ndarray
    sq_coef: np.ndarray

    def design(self, prediction: np.ndarray, numeric: np.ndarray, categories: Mapping[str, Any]) -> np.ndarray:
        """The terms of each row: 1, z and its hinges ``max(0, z - knot)`` for the prediction and each numeric
        feature, category indicators.

        Args:
            prediction: (n,) predictions.
            numeric: (n, len(self.numeric)) numeric features in ``self.numeric`` order (NaN: the mean).
            categories: feature -> (n,) values as text.
        """
        raw = np.column_stack([prediction, numeric]) if numeric.size else prediction[:, None]
        z = np.clip((raw - self.centre) / self.scale, -CLIP, CLIP)
        z = np.where(np.isfinite(z), z, 0.0)
        parts = [np.ones((z.shape[0], 1)), z]
        parts += [np.maximum(z[:, j : j + 1] - self.knots[j], 0.0) for j in range(z.shape[1])]
        for name, known in self.categories.items():
            values = np.asarray(categories.get(name, np.full(z.shape[0], None)), dtype=object)
            parts.append(
                np.column_stack([values == c for c in known]).astype(float) if known else np.empty((z.shape[0], 0))
            )
        return np.hstack(parts)

    @classmethod
    def fit(
        cls,
        prediction: Any,
        target: Any,
        numeric: Mapping[str, Any],
        categories: Mapping[str, Any],
    ) -> LossModel:
        """Fit on held-out rows: their predictions, true targets, numeric features and categorical ones (as text).

        Raises:
            DataError: fewer than ``MIN_ROWS`` rows with a finite prediction and target.
        """
        pred = np.asarray(prediction, dtype=float)
        y = np.asarray(target, dtype=float)
        keep = np.isfinite(pred) & np.isfinite(y)
        if keep.sum() < MIN_ROWS:
            raise DataError(f"loss estimation needs at least {MIN_ROWS} held-out rows, got {int(keep.sum())}")
        names = tuple(numeric)
        matrix = (
            np.column_stack([np.asarray(numeric[n], dtype=float)[keep] for n in names])
            if names
            else np.empty((int(keep.sum()), 0))
        )
        raw = np.column_stack([pred[keep], matrix])
        centre = np.nanmean(raw, axis=0)
        scale = np.nanstd(raw, axis=0)
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        z = (raw - centre) / scale
        knots = np.array([np.unique(np.nanquantile(z[:, j], KNOTS)) for j in range(z.shape[1])], dtype=object)
        knots = np.array([np.pad(k, (0, len(KNOTS) - k.size), constant_values=np.inf) for k in knots], dtype=float)
        cats = {}
        for name, values in categories.items():
            text = np.asarray(values, dtype=object)[keep]
            seen, counts = np.unique([str(v) for v in text if v is not None], return_counts=True)
            cats[name] = [str(c) for c in seen[np.argsort(-counts, kind="stable")][:TOP_CATEGORIES]]
        base = cls(names, centre, scale, knots, cats, np.zeros(0), np.zeros(0))
        x = base.design(pred[keep], matrix, {k: np.asarray(v, dtype=object)[keep] for k, v in categories.items()})
        error = y[keep] - pred[keep]
        penalty = RIDGE * np.eye(x.shape[1])
        penalty[0, 0] = 0.0  # the intercept is not shrunk
        gram = x.T @ x + penalty
        abs_coef = np.linalg.solve(gram, x.T @ np.abs(error))
        sq_coef = np.linalg.solve(gram, x.T @ (error * error))
        return cls(names, centre, scale, knots, cats, abs_coef, sq_coef)

    def estimate(self, prediction: np.ndarray, numeric: np.ndarray, categories: Mapping[str, Any]) -> dict[str, dict]:
        """Estimated MAE and RMSE of the rows, with 95% intervals; ``{}`` when there are none."""
        n = prediction.size
        if n == 0:
            return {}
        x = self.design(prediction, numeric, categories)
        abs_err = np.maximum(x @ self.abs_coef, 0.0)
        sq_err = np.maximum(x @ self.sq_coef, abs_err * abs_err)
        mae = float(abs_err.mean())
        mse = float(sq_err.mean())
        rmse = math.sqrt(mse)
        se_mae = math.sqrt(float((sq_err - abs_err * abs_err).sum())) / n
        se_mse = math.sqrt(float((2 * sq_err * sq_err).sum())) / n
        se_rmse = se_mse / (2 * rmse) if rmse > 0 else 0.0
        return {
            "mae": {"value": mae, "low": max(0.0, mae - Z95 * se_mae), "high": mae + Z95 * se_mae},
            "rmse": {"value": rmse, "low": max(0.0, rmse - Z95 * se_rmse), "high": rmse + Z95 * se_rmse},
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "centre": self.centre.tolist(),
            "scale": self.scale.tolist(),
            "knots": [[k if np.isfinite(k) else None for k in row] for row in self.knots.tolist()],
            "categories": {k: list(v) for k, v in self.categories.items()},
            "abs_coef": self.abs_coef.tolist(),
            "sq_coef": self.sq_coef.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LossModel:
        try:
            model = cls(
                tuple(str(n) for n in data["numeric"]),
                np.asarray(data["centre"], dtype=float),
                np.asarray(data["scale"], dtype=float),
                np.array([[np.inf if k is None else k for k in row] for row in data["knots"]], dtype=float),
                {str(k): [str(c) for c in v] for k, v in dict(data["categories"]).items()},
                np.asarray(data["abs_coef"], dtype=float),
                np.asarray(data["sq_coef"], dtype=float),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"estimation loss model: malformed ({exc})") from None
        terms = 1 + len(model.numeric)
        width = 1 + terms * (1 + len(KNOTS)) + sum(len(v) for v in model.categories.values())
        if model.knots.shape != (terms, len(KNOTS)):
            raise DataError(f"estimation loss model: expected {terms} x {len(KNOTS)} knots, got {model.knots.shape}")
        if model.abs_coef.shape != (width,) or model.sq_coef.shape != (width,):
            raise DataError(f"estimation loss model: expected {width} coefficients, got {model.abs_coef.shape}")
        return model


def numeric_matrix(names: Sequence[str], columns: Sequence[str], features: np.ndarray) -> np.ndarray:
    """``features`` (columns in ``columns`` order) reordered to ``names``; a missing feature is NaN (its mean)."""
    index = {c: j for j, c in enumerate(columns)}
    out = np.full((features.shape[0], len(names)), math.nan)
    for k, name in enumerate(names):
        if name in index:
            out[:, k] = features[:, index[name]]
    return out
