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
from threadpoolctl import threadpool_limits

from monitoring.config.ground_truth import TRACK_KEYS_ENV
from monitoring.core.errors import ConfigError
from monitoring.domain.training.artifacts import ModelArtifact, load_artifact
from monitoring.domain.training.estimators import THREADS
from monitoring.domain.training.predictions import Predictions, predict_frame
from monitoring.serving.tracking import track_prediction

#: Environment variable naming the artifact version directory, relative to the working directory.
ARTIFACT_ENV = "CML_MONITOR_MODEL_ARTIFACT"


class Prediction(NamedTuple):
    """One prediction: the class (or number), its probabilities and the validated inputs.

    A NamedTuple, not a dataclass: CML may exec this file without registering it in sys.modules.
    """

    prediction: Any
    probability: float | None
    probabilities: dict[str, float] | None
    features: dict[str, Any]


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: Any) -> float | None:
    """A numeric feature's value, None when missing; raises ValueError for anything but a finite number."""
    if value is None:
        return None
    try:
        number = math.nan if isinstance(value, bool) or not isinstance(value, numbers.Real) else float(value)
    except OverflowError:  # an int too large for a float
        number = math.nan
    if not math.isfinite(number):
        raise ValueError("must be a finite number (or null when missing)")
    return number


def _category(value: Any) -> str | None:
    """A categorical feature's value as text, None when missing; whole numbers are accepted as their text."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    raise ValueError("must be a string (or null when missing)")


class Predictor:
    """Validates requests against the artifact's model spec and predicts; knows nothing about cdsw."""

    def __init__(self, artifact: ModelArtifact):
        self.artifact = artifact
        self.spec = artifact.spec
        self.features: list[str] = self.spec.feature_names
        self.kinds = self.spec.kinds
        self.version: str = artifact.version
        self.classes: list = self.spec.classes
        #: One model call per request: the class is the most probable one (``ModelArtifact.predict_is_argmax``).
        self.argmax: bool = artifact.predict_is_argmax
        self.threads_limited = False

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
        parts = [f"{name} ({self.kinds[name]})" for name in self.features]
        return f"expected a flat JSON object with {', '.join(parts)}"

    def validate(self, args: Any) -> dict[str, Any]:
        """Check a request and return its feature values in model order.

        Args:
            args: the request body CML passes to the model function.

        Returns:
            ``{feature: float | str | None}`` for every model feature (extra keys are ignored):
            numbers for numeric features, strings for categorical ones, None when null.

        Raises:
            ValueError: not a dict, or a feature missing or of the wrong kind (names the feature).
        """
        if not isinstance(args, Mapping):
            raise ValueError(f"request must be a JSON object, got {type(args).__name__}; {self._expected()}")
        values = {}
        for name in self.features:
            if name not in args:
                raise ValueError(f"feature {name!r} is missing from the request; {self._expected()}")
            read = _number if self.kinds[name] == "numeric" else _category
            try:
                values[name] = read(args[name])
            except ValueError as exc:
                raise ValueError(f"feature {name!r} {exc}, got {_shown(args[name])}") from None
        return values

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        """Validated rows as the frame the estimator takes (float64 numeric, object categorical)."""
        data = {}
        for name in self.features:
            column = [row[name] for row in rows]
            if self.kinds[name] == "numeric":
                data[name] = np.array([math.nan if v is None else v for v in column], dtype=np.float64)
            else:
                data[name] = np.array(column, dtype=object)
        return pd.DataFrame(data, columns=self.features)

    def predict_frame(self, frame: pd.DataFrame) -> Predictions:
        """Predict many rows at once (for evaluation; no validation beyond the estimator's).

        Args:
            frame: rows with every model feature as a column, typed by kind.

        Returns:
            Class values (or numbers) and, when the estimator has them, probabilities in class order.
        """
        return predict_frame(
            self.artifact.estimator,
            frame,
            self.spec,
            self.artifact.capabilities,
            argmax=self.argmax,
            limit_threads=not self.threads_limited,
        )

    def predict_one(self, args: Any) -> Prediction:
        """Validate one request and predict it.

        Args:
            args: the request body.

        Returns:
            The prediction (a class value or a number), P(positive class) for a binary classifier,
            every class's probability for a multi-class one, and the validated feature values.

        Raises:
            ValueError: see ``validate``.
        """
        values = self.validate(args)
        result = self.predict_frame(self.frame([values]))
        value = result.values[0]
        prediction = value if self.spec.is_classifier else float(value)
        if result.proba is None:
            return Prediction(prediction, None, None, values)
        row = [float(p) for p in result.proba[0]]
        if len(self.classes) == 2:
            return Prediction(prediction, row[self.classes.index(self.spec.positive_class)], None, values)
        return Prediction(prediction, None, {str(c): p for c, p in zip(self.classes, row)}, values)


_cached: Callable[[Any], Any] | None = None


def _build() -> Callable[[Any], Any]:
    """Load the predictor and wrap the tracked predict in ``cdsw.model_metrics`` (first call only)."""
    from monitoring.cmlclient import cml

    cdsw = cml.sdk()
    predictor = Predictor.from_env()
    threadpool_limits(THREADS)  # a replica serves one request at a time: no thread pool to wait on
    predictor.threads_limited = True

    keys = [k.strip() for k in os.environ.get(TRACK_KEYS_ENV, "").split(",") if k.strip()]

    def tracked(args: Any) -> Any:
        result = predictor.predict_one(args)
        track_prediction(
            result.features,
            result.prediction,
            predictor.version,
            probability=result.probability,
            probabilities=result.probabilities,
            keys={k: args[k] for k in keys if k in args},
            sdk=cdsw,
        )
        return result.prediction

    decorated = cdsw.model_metrics(tracked)

    def call(args: Any) -> Any:
        predictor.validate(args)  # reject bad requests before the decorator opens a metrics record
        return decorated(args)

    return call


def predict(args: dict) -> Any:
    """The CML model function: ``file_path=monitoring/serving/predict.py``, ``function_name=predict``.

    Args:
        args: flat JSON object of feature values (numbers, strings by the spec's kinds; null when missing).

    Returns:
        What ``cdsw.model_metrics`` makes of the prediction: ``{"prediction", "uuid"}``.

    Raises:
        ValueError: the request does not match the model spec (names the feature).
        ConfigError: ``CML_MONITOR_MODEL_ARTIFACT`` is unset, or cdsw is unavailable.
        DataError: the artifact is missing or corrupt.
    """
    global _cached
    if _cached is None:
        _cached = _build()
    return _cached(args)
