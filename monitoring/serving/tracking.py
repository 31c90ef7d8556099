"""What a predict function tracks for cml-monitor, in one call: for our model file and for users' own.

Call ``track_prediction`` inside a function decorated with ``@cdsw.model_metrics``; see
``docs/own-model.md`` ("Serving contract") for what each metric must hold.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

INPUT_FEATURES = "input_features"
PREDICTION = "prediction"
PROBABILITY = "probability"
PROBABILITIES = "probabilities"
MODEL_VERSION = "model_version"


def plain(value: Any) -> Any:
    """A value as JSON: numpy scalars to Python, NaN and infinities to None, other values as they are."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def track_prediction(
    features: Mapping[str, Any],
    prediction: Any,
    model_version: str,
    *,
    probability: float | None = None,
    probabilities: Mapping[Any, float] | None = None,
    keys: Mapping[str, Any] | None = None,
    sdk: Any = None,
) -> dict[str, Any]:
    """Track one prediction the way cml-monitor reads it back.

    Args:
        features: ``{feature name: value}`` of the request: numbers for numeric features, strings
            for categorical ones, None when missing (names as in ``model.features``).
        prediction: the predicted class, as in ``model.label.classes`` (a classifier), or a number.
        model_version: the version of the model serving (any text, e.g. ``v3`` or a git sha).
        probability: a binary classifier's probability of the positive class.
        probabilities: a multi-class classifier's probability of each class.
        keys: business keys of the request (``{"customer_id": "C-1042"}``), each tracked under its
            name so that the ground-truth job can join labels keyed by it.
        sdk: the ``cdsw`` module (default: imported lazily, inside CML or the local workspace).

    Returns:
        The metrics tracked, as JSON-safe values.

    Raises:
        ConfigError: ``cdsw`` cannot be imported (outside CML and the local workspace).
    """
    if sdk is None:
        from monitoring.cmlclient import cml

        sdk = cml.sdk()
    tracked = {
        INPUT_FEATURES: {str(k): plain(v) for k, v in features.items()},
        PREDICTION: plain(prediction),
        MODEL_VERSION: str(model_version),
    }
    if probability is not None:
        tracked[PROBABILITY] = plain(float(probability))
    if probabilities is not None:
        tracked[PROBABILITIES] = {str(k): plain(float(v)) for k, v in probabilities.items()}
    for name, value in (keys or {}).items():
        tracked[str(name)] = plain(value)
    for key, value in tracked.items():
        sdk.track_metric(key, value)
    return tracked
