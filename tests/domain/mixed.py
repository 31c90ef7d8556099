"""A small learnable data set with numeric and categorical features, for any task (built in code, seeded)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from monitoring.config.model_spec import ModelConfig

FEATURES = [
    {"name": "tenure", "kind": "numeric"},
    {"name": "charges", "kind": "numeric"},
    {"name": "contract", "kind": "categorical"},
    {"name": "internet", "kind": "categorical"},
]
CONTRACTS = ("month", "year", "two-year")
INTERNET = ("dsl", "fiber", "none")


def spec(task: str = "classification", classes: list | None = None, **label) -> ModelConfig:
    """A model spec over ``FEATURES``: binary "No"/"Yes" by default, or the given classes, or regression."""
    if task == "regression":
        return ModelConfig(name="mixed", task="regression", features=FEATURES, label={"name": "target"})
    chosen = classes if classes is not None else ["No", "Yes"]
    return ModelConfig(name="mixed", features=FEATURES, label={"name": "target", "classes": chosen, **label})


def frame(n: int, rng: np.random.Generator, model: ModelConfig, missing: float = 0.02) -> pd.DataFrame:
    """Rows whose target depends on both kinds of feature; a few values missing (NaN / None)."""
    tenure = rng.uniform(0, 72, n)
    contract = rng.choice(CONTRACTS, n, p=[0.5, 0.3, 0.2])
    internet = rng.choice(INTERNET, n, p=[0.4, 0.4, 0.2])
    charges = 20 + 60 * (internet == "fiber") + 10 * (internet == "dsl") + rng.normal(0, 5, n)
    score = -0.05 * tenure + 1.5 * (contract == "month") + 1.0 * (internet == "fiber") + rng.normal(0, 0.5, n)
    out = pd.DataFrame(
        {
            "tenure": tenure,
            "charges": charges,
            "contract": np.array(contract, dtype=object),
            "internet": np.array(internet, dtype=object),
        }
    )
    if model.task == "regression":
        out["target"] = 100 + 20 * score + rng.normal(0, 2, n)
    else:
        classes = model.classes
        edges = np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1])
        out["target"] = np.array([classes[i] for i in np.searchsorted(edges, score)], dtype=object)
        if all(isinstance(c, int) for c in classes):
            out["target"] = out["target"].astype(np.int64)
    holes = rng.random((n, 2)) < missing
    out.loc[holes[:, 0], "charges"] = np.nan
    out.loc[holes[:, 1], "internet"] = None
    return out
