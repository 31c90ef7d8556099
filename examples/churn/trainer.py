"""A custom trainer for the churn example: the entry point ``model.trainer`` names.

cml-monitor calls ``train(frame, spec)`` for the first model and for every retraining: ``frame``
holds one row per labelled example, a column per feature of ``spec`` (numbers as float64,
categories as text or None) and the label column ``spec.label.name`` with class values ("No",
"Yes"). It must return a fitted estimator with ``predict`` (and ``predict_proba`` for
probabilities and the ROC AUC); cml-monitor checks it on a few training rows and saves it.

This one is what Cloudera's churn prototype fits: a logistic regression on one-hot categories
and scaled numbers. Everything it needs comes from ``spec``, so a new feature in
``pipeline.yaml`` needs no change here.
"""

from __future__ import annotations

import pandas as pd
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


def train(frame: pd.DataFrame, spec) -> Pipeline:
    """Fit a logistic regression on the spec's features.

    Args:
        frame: the training rows (features typed by kind, and the label column).
        spec: the model spec (``monitoring.config.model_spec.ModelConfig``).

    Returns:
        The fitted pipeline; its classes are the label values of ``frame``.
    """
    numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())  # TotalCharges has blanks
    categorical = OneHotEncoder(handle_unknown="ignore")  # a missing category (None) is one more category
    features = make_column_transformer(
        (numeric, spec.numeric_features),
        (categorical, spec.categorical_features),
    )
    model = make_pipeline(features, LogisticRegression(max_iter=2000, C=1.0))
    return model.fit(frame[spec.feature_names], frame[spec.label.name])
