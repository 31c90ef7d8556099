"""Seeded data for the estimation tests: a reference (held-out) set, then windows under covariate shift or concept drift."""

from __future__ import annotations

import numpy as np

from tests.domain.support import T0, model_spec, prediction

HOUR = 3_600_000
CLASSIFIER = model_spec(features=["x1", "x2"])
REGRESSOR = model_spec(features=["x1", "x2"], label="y", task="regression")


def logit(x1: np.ndarray, x2: np.ndarray, flipped: bool = False) -> np.ndarray:
    """The true log-odds of the positive class (concept drift: the concept flipped)."""
    z = 1.5 * x1 - 1.0 * x2 + 0.3
    return -z if flipped else z


def score(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    """The model's probability: it ranks as the true concept does but is overconfident (needs calibration)."""
    return 1.0 / (1.0 + np.exp(-2.5 * logit(x1, x2)))


def classifier_rows(rng: np.random.Generator, n: int, shift: float = 0.0, spread: float = 1.0, flipped: bool = False):
    """Features, the model's score and true labels; ``shift``/``spread`` move the inputs (covariate shift)."""
    x1 = rng.normal(shift * -0.2, spread, n)
    x2 = rng.normal(shift * 0.1, spread, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit(x1, x2, flipped)))).astype(int)
    return x1, x2, score(x1, x2), y


def classifier_records(x1, x2, s, y, start_ms: int = T0, labelled: float = 1.0, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(x1.size):
        rec = prediction(
            f"c{start_ms}-{i}",
            start_ms + int(i * HOUR / x1.size),
            int(s[i] >= 0.5),
            label=int(y[i]) if rng.random() < labelled else None,
            features={"x1": float(x1[i]), "x2": float(x2[i])},
        )
        rec["metrics"]["probability"] = float(s[i])
        out.append(rec)
    return out


def regressor_rows(rng: np.random.Generator, n: int, shift: float = 0.0, offset: float = 0.0):
    """Features, the model's prediction and the target: errors grow with |x1|; ``offset`` moves the target (concept)."""
    x1 = rng.normal(shift, 1.0, n)
    x2 = rng.normal(0.0, 1.0, n)
    pred = 3.0 * x1 + 2.0 * x2
    y = pred + offset + rng.normal(0.0, 1.0 + np.abs(x1), n)
    return x1, x2, pred, y


def regressor_records(x1, x2, pred, y, start_ms: int = T0) -> list[dict]:
    return [
        prediction(
            f"r{start_ms}-{i}",
            start_ms + int(i * HOUR / x1.size),
            float(pred[i]),
            label=float(y[i]),
            features={"x1": float(x1[i]), "x2": float(x2[i])},
        )
        for i in range(x1.size)
    ]
