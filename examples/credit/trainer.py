"""The credit example's trainer: a scorecard-style logistic regression, the entry point ``model.trainer`` names.

cml-monitor calls ``train(frame, spec)`` for the first model and for every retraining (the
contract: docs/own-model.md, "The trainer contract"). ``frame`` holds a column per feature of
``spec`` (numbers as float64 with NaN for missing, categories as text or None; ``own_telephone``
arrives as the text ``"True"`` or ``"False"``) and the label column ``risk`` with ``"good"`` or
``"bad"``.

What a credit team would fit: the monthly instalment and the repayment burden (instalment
against income) derived from the application, numbers imputed and scaled, categories one-hot
encoded (a category the model never saw, such as a new employment type, is ignored rather than
refused), and a logistic regression that weighs both classes equally, so that defaults, the
rarer class, are not simply predicted away. The fitted pipeline refers to ``with_ratios`` below:
the model file imports this module when it loads the artifact, which works because the project
(and so ``examples/credit/``) is part of every model build.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

#: The columns ``with_ratios`` adds to the application's own.
RATIOS = ["instalment", "burden"]


def with_ratios(frame: pd.DataFrame) -> pd.DataFrame:
    """The application with its monthly instalment and burden (instalment / income; NaN without an income)."""
    instalment = frame["credit_amount"] / frame["duration_months"].where(frame["duration_months"] > 0)
    income = frame["monthly_income"].where(frame["monthly_income"] > 0)
    return frame.assign(instalment=instalment, burden=instalment / income)


def train(frame: pd.DataFrame, spec) -> Pipeline:
    """Fit the scorecard on the spec's features plus the derived ratios.

    Args:
        frame: the training rows (features typed by kind, and the label column).
        spec: the model spec (``monitoring.config.model_spec.ModelConfig``).

    Returns:
        The fitted pipeline; its classes are the label values of ``frame`` (``bad``, ``good``).
    """
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    columns = make_column_transformer(
        (numbers, [*spec.numeric_features, *RATIOS]),
        (OneHotEncoder(handle_unknown="ignore", dtype=np.float64), spec.categorical_features),
    )
    model = make_pipeline(
        FunctionTransformer(with_ratios),
        columns,
        LogisticRegression(class_weight="balanced", max_iter=2000, C=1.0),
    )
    return model.fit(frame[spec.feature_names], frame[spec.label.name])
