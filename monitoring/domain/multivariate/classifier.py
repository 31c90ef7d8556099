"""The domain classifier: can a model tell a window's rows from the reference's? Cross-validated AUROC with its bound.

Each feature alone may look the same in both while their joint distribution moved (two signals
that used to rise together now move apart). A logistic regression on every standardised feature,
its square and every product of two (so a changed spread or correlation is visible, not only a
moved mean), fitted by Newton's method with a ridge penalty, tells up to ``SAMPLE`` reference rows
from up to ``SAMPLE`` of the window's (a seeded sample); its out-of-fold AUROC over ``FOLDS`` folds (3)
is 0.5 when it cannot tell them apart. The interval is Hanley and McNeil's. The features that
drive it are ranked by the size of the coefficients of their terms (a product counts half to each).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.domain.metrics import scoring

#: Rows of each side the classifier sees (the reference's kept at training, the window's sampled).
SAMPLE = 1000
FOLDS = 3
RIDGE = 1.0
NEWTON_STEPS = 12
#: Fewest rows of the window for its joint drift to be computed.
MIN_ROWS = 100
Z95 = 1.959963984540054
#: The drivers are looked for only when the AUROC's lower bound is above this (a window that drifts).
DRIVERS_ABOVE = 0.55


@dataclass(frozen=True)
class JointReference:
    """A seeded sample of the training rows: numeric features as they are, a categorical one as the
    reference share of its value (0: a value not seen), with the centre and scale of each column."""

    names: tuple[str, ...]
    categorical: dict[str, dict[str, float]]
    sample: np.ndarray
    centre: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, numeric: Mapping[str, Any], categorical: Mapping[str, Any], seed: int = 0) -> JointReference:
        """From the training rows' numeric features (floats) and categorical ones (text)."""
        shares = {}
        for name, values in categorical.items():
            text = [str(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
            seen, counts = np.unique(np.asarray(text, dtype=object), return_counts=True) if text else ([], [])
            shares[name] = {str(v): float(c) / max(len(text), 1) for v, c in zip(seen, counts)}
        names = (*numeric, *categorical)
        ref = cls(tuple(names), shares, np.empty((0, len(names))), np.zeros(len(names)), np.ones(len(names)))
        matrix = ref.encode({k: np.asarray(v, dtype=float) for k, v in numeric.items()}, categorical)
        rng = np.random.default_rng(seed)
        if matrix.shape[0] > SAMPLE:
            matrix = matrix[np.sort(rng.choice(matrix.shape[0], SAMPLE, replace=False))]
        centre = np.nanmean(matrix, axis=0) if matrix.size else np.zeros(len(names))
        scale = np.nanstd(matrix, axis=0) if matrix.size else np.ones(len(names))
        scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        return cls(ref.names, shares, matrix, np.where(np.isfinite(centre), centre, 0.0), scale)

    def encode(self, numeric: Mapping[str, np.ndarray], categorical: Mapping[str, Any]) -> np.ndarray:
        """The rows as this reference's columns (a feature absent: NaN)."""
        n = len(next(iter(numeric.values()))) if numeric else len(next(iter(categorical.values()), []))
        out = np.full((n, len(self.names)), math.nan)
        for j, name in enumerate(self.names):
            if name in self.categorical:
                if name in categorical:
                    share = self.categorical[name]
                    out[:, j] = [share.get(str(v), 0.0) if v is not None else math.nan for v in categorical[name]]
            elif name in numeric:
                out[:, j] = numeric[name]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "names": list(self.names),
            "categorical": self.categorical,
            "sample": [[None if not math.isfinite(v) else v for v in row] for row in self.sample.tolist()],
            "centre": self.centre.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JointReference:
        sample = np.array([[math.nan if v is None else v for v in row] for row in data["sample"]], dtype=float)
        names = tuple(data["names"])
        return cls(
            names,
            {k: dict(v) for k, v in data["categorical"].items()},
            sample.reshape(-1, len(names)),
            np.asarray(data["centre"], dtype=float),
            np.asarray(data["scale"], dtype=float),
        )


def _terms(z: np.ndarray) -> tuple[np.ndarray, list[tuple[int, ...]]]:
    k = z.shape[1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    cols = [z, z * z] + ([np.column_stack([z[:, i] * z[:, j] for i, j in pairs])] if pairs else [])
    owners = [(i,) for i in range(k)] * 2 + pairs
    return np.hstack([np.ones((z.shape[0], 1)), *cols]), owners


def _logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge-penalised logistic regression by Newton's method (the intercept unpenalised)."""
    w = np.zeros(x.shape[1])
    penalty = np.full(x.shape[1], RIDGE)
    penalty[0] = 0.0
    for _ in range(NEWTON_STEPS):
        p = 1.0 / (1.0 + np.exp(-np.clip(x @ w, -30, 30)))
        grad = x.T @ (p - y) + penalty * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(penalty + 1e-9)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-4:
            break
    return w


def joint_drift(
    reference: JointReference, numeric: Mapping[str, np.ndarray], categorical: Mapping[str, Any], seed: int
) -> dict[str, Any] | None:
    """``{"auc", "low", "high", "rows", "drivers": [[feature, share], ...]}`` of one window; None with too few rows."""
    n = len(next(iter(numeric.values()))) if numeric else len(next(iter(categorical.values()), []))
    if n < MIN_ROWS or reference.sample.shape[0] < MIN_ROWS:
        return None
    rng = np.random.default_rng(seed)
    if n > SAMPLE:  # sampled before it is encoded: a categorical value is looked up once per sampled row
        keep = rng.choice(n, SAMPLE, replace=False)
        numeric = {k: np.asarray(v)[keep] for k, v in numeric.items()}
        categorical = {k: np.asarray(v, dtype=object)[keep] for k, v in categorical.items()}
    window = reference.encode(numeric, categorical)
    both = np.vstack([reference.sample, window])
    z = np.clip((both - reference.centre) / reference.scale, -8, 8)
    x, owners = _terms(np.where(np.isfinite(z), z, 0.0))
    y = np.concatenate([np.zeros(reference.sample.shape[0]), np.ones(window.shape[0])])
    fold = rng.permutation(y.size) % FOLDS
    score = np.empty(y.size)
    for f in range(FOLDS):
        w = _logistic(x[fold != f], y[fold != f])
        score[fold == f] = x[fold == f] @ w
    auc = float(scoring._one_auc(y == 1, score))
    n1, n2 = float(window.shape[0]), float(reference.sample.shape[0])
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    se = math.sqrt(max(auc * (1 - auc) + (n1 - 1) * (q1 - auc * auc) + (n2 - 1) * (q2 - auc * auc), 0.0) / (n1 * n2))
    low, high = max(0.0, auc - Z95 * se), min(1.0, auc + Z95 * se)
    drivers = _drivers(x, y, owners, reference.names) if low > DRIVERS_ABOVE else []
    return {
        "auc": auc,
        "low": low,
        "high": high,
        "rows": int(window.shape[0]),
        "drivers": drivers,
    }


def _drivers(x: np.ndarray, y: np.ndarray, owners: list[tuple[int, ...]], names: Sequence[str]) -> list[list]:
    """The three features whose terms weigh most in the classifier fitted on every row, with their shares."""
    weights = np.abs(_logistic(x, y)[1:])
    weight = np.zeros(len(names))
    for coef, owner in zip(weights, owners):
        for i in owner:
            weight[i] += coef / len(owner)
    total = weight.sum() or 1.0
    order = np.argsort(-weight, kind="stable")[:3]
    return [[names[i], round(float(weight[i] / total), 3)] for i in order]


def window_inputs(names: Sequence[str], feature_names: Sequence[str], features: np.ndarray, categories: Mapping):
    """A window's numeric features by name (from the columns' matrix) and its categorical ones."""
    numeric = {n: features[:, j] for j, n in enumerate(feature_names) if n in names}
    return numeric, {n: v for n, v in categories.items() if n in names}
