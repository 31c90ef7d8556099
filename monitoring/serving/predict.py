"""The model function CML builds (``predict``), around a pure, testable ``Predictor``."""

from __future__ import annotations

import math
import numbers
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

if __package__ in (None, ""):  # loaded by file path (a CML model build), not as monitoring.serving.predict
    _ROOT = str(Path(__file__).resolve().parents[2])  # the project root, holding the monitoring package
    if _ROOT not in sys.path:
        sys.path.insert(0, _ROOT)

import numpy as np
import pandas as pd

from monitoring.core.errors import ConfigError
from monitoring.domain.training import ModelArtifact, load_artifact

#: Environment variable naming the artifact version directory, relative to the working directory.
ARTIFACT_ENV = "CML_MONITOR_MODEL_ARTIFACT"
POSITIVE_CLASS = 1


class Prediction(NamedTuple):
    """One prediction: the class, P(positive class) and the validated inputs.

    A NamedTuple, not a dataclass: CML may exec this file without registering it in sys.modules.
    """

    prediction: int
    probability: float
    features: dict[str, float]


class Predictor:
    """Validates requests and predicts with one loaded artifact; knows nothing about cdsw."""

    def __init__(self, artifact: ModelArtifact):
        self.artifact = artifact
        fitted = getattr(artifact.pipeline, "feature_names_in_", None)
        self.features: list[str] = [str(f) for f in fitted] if fitted is not None else artifact.features
        self.version: str = artifact.version
        self.classes: list[int] = [int(c) for c in artifact.pipeline.classes_]
        self._positive = self.classes.index(POSITIVE_CLASS) if POSITIVE_CLASS in self.classes else None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Predictor:
        """Load the artifact version directory at ``path``.

        Args:
            path: the version directory (e.g. ``var/models/<model>/v3``).

        Returns:
            The predictor.

        Raises:
            DataError: the artifact is missing or corrupt (names the path).
        """
        return cls(load_artifact(path))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Predictor:
        """Load the artifact named by ``$CML_MONITOR_MODEL_ARTIFACT``.

        Args:
            env: environment to read (default ``os.environ``); the path is relative to the
                working directory, which in CML is the build snapshot of the project.

        Returns:
            The predictor.

        Raises:
            ConfigError: the variable is not set.
            DataError: the artifact is missing or corrupt.
        """
        env = os.environ if env is None else env
        path = env.get(ARTIFACT_ENV)
        if not path:
            raise ConfigError(
                f"{ARTIFACT_ENV} is not set: the model deployment's environment must name the "
                f"artifact version directory (e.g. var/models/<model>/v1)"
            )
        return cls.load(path)

    def _expected(self) -> str:
        return f"expected a flat JSON object with numeric {', '.join(self.features)}"

    def validate(self, args: Any) -> dict[str, float]:
        """Check a request and return its feature values as floats, in model order.

        Args:
            args: the request body CML passes to the model function.

        Returns:
            ``{feature: float}`` for every model feature (extra keys are ignored).

        Raises:
            ValueError: not a dict, or a feature missing or not a finite number (names the feature).
        """
        if not isinstance(args, Mapping):
            raise ValueError(f"request must be a JSON object, got {type(args).__name__}; {self._expected()}")
        values = {}
        for name in self.features:
            if name not in args:
                raise ValueError(f"feature {name!r} is missing from the request; {self._expected()}")
            value = args[name]
            try:
                number = math.nan if isinstance(value, bool) or not isinstance(value, numbers.Real) else float(value)
            except OverflowError:  # an int too large for a float
                number = math.nan
            if not math.isfinite(number):
                shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
                raise ValueError(f"feature {name!r} must be a finite number, got {shown}")
            values[name] = number
        return values

    def predict_frame(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Predict many rows at once (for evaluation; no validation beyond sklearn's).

        Args:
            frame: rows with every model feature as a column.

        Returns:
            (int64 predictions, float64 P(class 1) or P(predicted class) if 1 is not a class).
        """
        x = frame[self.features].astype(float)
        proba = self.artifact.pipeline.predict_proba(x)
        winner = np.argmax(proba, axis=1)
        predictions = np.asarray(self.classes, dtype=np.int64)[winner]
        column = proba[:, self._positive] if self._positive is not None else proba[np.arange(len(x)), winner]
        return predictions, column.astype(np.float64)

    def predict_one(self, args: Any) -> Prediction:
        """Validate one request and predict it.

        Args:
            args: the request body.

        Returns:
            The prediction, P(class 1) and the validated feature values.

        Raises:
            ValueError: see ``validate``.
        """
        values = self.validate(args)
        predictions, probability = self.predict_frame(pd.DataFrame([values], columns=self.features))
        return Prediction(int(predictions[0]), float(probability[0]), values)


_cached: Callable[[Any], Any] | None = None


def _build() -> Callable[[Any], Any]:
    """Load the predictor and wrap the tracked predict in ``cdsw.model_metrics`` (first call only)."""
    from monitoring.cmlclient import cml

    cdsw = cml.sdk()
    predictor = Predictor.from_env()

    def tracked(args: Any) -> int:
        result = predictor.predict_one(args)
        cdsw.track_metric("input_features", result.features)
        cdsw.track_metric("prediction", result.prediction)
        cdsw.track_metric("probability", result.probability)
        cdsw.track_metric("model_version", predictor.version)
        return result.prediction

    decorated = cdsw.model_metrics(tracked)

    def call(args: Any) -> Any:
        predictor.validate(args)  # reject bad requests before the decorator opens a metrics record
        return decorated(args)

    return call


def predict(args: dict) -> Any:
    """The CML model function: ``file_path=monitoring/serving/predict.py``, ``function_name=predict``.

    Args:
        args: flat JSON object of feature values.

    Returns:
        What ``cdsw.model_metrics`` makes of the integer prediction: ``{"prediction", "uuid"}``.

    Raises:
        ValueError: the request is not a flat object of finite numbers (names the feature).
        ConfigError: ``CML_MONITOR_MODEL_ARTIFACT`` is unset, or cdsw is unavailable.
        DataError: the artifact is missing or corrupt.
    """
    global _cached
    if _cached is None:
        _cached = _build()
    return _cached(args)
