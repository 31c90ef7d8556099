"""Estimators: the built-in default per task, a user's trainer entry point, and the check every fitted one passes."""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import ConfigError, DataError

#: How ``metadata["trainer"]`` names the built-in default.
BUILTIN = "builtin"
#: Rows of the training frame the fitted estimator is asked to predict when it is checked.
CHECK_ROWS = 64
#: OpenMP threads for fitting and predicting: on a busy machine more threads than free cores
#: make histogram gradient boosting tens of times slower (threads spin waiting for each other).
THREADS = 1


def default_estimator(spec: ModelConfig, seed: int) -> Any:
    """The built-in model of a task: histogram gradient boosting, categorical features one-hot encoded.

    Missing numeric values need no imputation: the boosting learns at each split which side they
    go (better than a median, and it knows a value was missing); trees need no scaling either.
    Categorical features are one-hot encoded with a missing value as a category of its own and
    unknown categories ignored (all zeros), so a category first seen in production never fails
    a request. Without categorical features the model takes the frame as it is (one step less
    per request).

    Args:
        spec: the model spec (task, features and their kinds).
        seed: random seed of the boosting.

    Returns:
        An unfitted scikit-learn estimator taking a frame with the spec's feature columns.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    boosting = (HistGradientBoostingClassifier if spec.is_classifier else HistGradientBoostingRegressor)(
        random_state=seed
    )
    if not spec.categorical_features:
        return boosting
    onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64)
    parts = [("categorical", onehot, spec.categorical_features)]
    if spec.numeric_features:
        parts.insert(0, ("numeric", "passthrough", spec.numeric_features))
    return Pipeline([("features", ColumnTransformer(parts, verbose_feature_names_out=False)), ("model", boosting)])


def load_trainer(
    entry_point: str, project_root: str | Path | None = None
) -> Callable[[pd.DataFrame, ModelConfig], Any]:
    """Import ``package.module:function``; the project root is put on ``sys.path`` first.

    The root stays there: a model the trainer builds may pickle references to the trainer's
    module, which loading the artifact then imports (serving does the same).

    Raises:
        ConfigError: naming ``model.trainer``, when the module or function cannot be found, importing
            the module fails, or the function cannot be called as ``trainer(frame, spec)``.
    """
    module_name, _, function_name = entry_point.partition(":")
    if project_root is not None and str(project_root) not in sys.path:
        sys.path.insert(0, str(project_root))
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"model.trainer: cannot import {module_name!r} ({type(exc).__name__}: {exc}); the module must be "
            "importable from the project root (a file such as examples/churn/trainer.py is examples.churn.trainer)"
        ) from None
    except Exception as exc:  # noqa: BLE001 - user code: a syntax error, a failing module-level statement
        raise ConfigError(f"model.trainer: importing {module_name!r} failed ({type(exc).__name__}: {exc})") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"model.trainer: module {module_name!r} has no function {function_name!r}")
    _check_call(function, entry_point)
    return function


def _check_call(function: Callable[..., Any], entry_point: str) -> None:
    """Refuse a trainer that cannot be called as ``trainer(frame, spec)`` (checked without calling it)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some callables (builtins, C extensions) do not say: they are tried as called
        return
    try:
        signature.bind(pd.DataFrame(), None)
    except TypeError as exc:
        raise ConfigError(
            f"model.trainer {entry_point!r}: its signature is {signature}, but cml-monitor calls it with two "
            f"arguments, (frame, spec) ({exc})"
        ) from None


@dataclass(frozen=True)
class Capabilities:
    """What a checked estimator offers: probabilities, and the spec class of each probability column."""

    has_proba: bool
    proba_classes: tuple = ()


def _class_text(values: Any) -> list[str]:
    return [str(v.item() if isinstance(v, np.generic) else v) for v in values]


def check_estimator(estimator: Any, spec: ModelConfig, sample: pd.DataFrame, who: str) -> Capabilities:
    """Check a fitted estimator against the spec by asking it to predict a few known rows.

    Args:
        estimator: what the trainer returned (or an artifact held).
        spec: the model spec.
        sample: a few rows with the spec's feature columns.
        who: what produced it, for messages (``model.trainer 'pkg.mod:fn'``, an artifact path).

    Returns:
        Its capabilities (a classifier without ``predict_proba`` is allowed: no probability is tracked).

    Raises:
        ConfigError: no ``predict``, predicting fails (not fitted?), predictions or classes outside
            ``model.label.classes``, a regressor predicting something that is not a number.
    """
    name = type(estimator).__name__
    if not callable(getattr(estimator, "predict", None)):
        raise ConfigError(
            f"{who} returned a {name}, which has no predict method: it must return a fitted estimator "
            "with scikit-learn's predict (and predict_proba for a classifier)"
        )
    rows = sample[spec.feature_names].iloc[:CHECK_ROWS]
    try:
        with threadpool_limits(THREADS):
            predicted = np.asarray(estimator.predict(rows))
    except Exception as exc:  # noqa: BLE001 - user code: any failure breaks the contract
        raise ConfigError(
            f"{who}: its {name}.predict failed on training rows ({type(exc).__name__}: {exc}); "
            "is the estimator fitted, and does it take a frame with the columns of model.features?"
        ) from None
    if predicted.shape[:1] != (len(rows),):
        raise ConfigError(f"{who}: {name}.predict returned shape {predicted.shape} for {len(rows)} rows")
    if not spec.is_classifier:
        try:
            ok = np.isfinite(predicted.astype(np.float64)).all()
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{who}: a regressor must predict finite numbers, {name}.predict gave {predicted[:3]!r}")
        return Capabilities(False)
    classes = _class_text(spec.classes)
    stray = sorted(set(_class_text(predicted)) - set(classes))
    if stray:
        raise ConfigError(f"{who}: {name} predicts {stray}, which are not in model.label.classes {spec.classes}")
    return capabilities_of(estimator, spec, who)


def capabilities_of(estimator: Any, spec: ModelConfig, who: str) -> Capabilities:
    """Whether a classifier gives probabilities, and the spec class of each probability column.

    Raises:
        ConfigError: it has ``predict_proba`` but its ``classes_`` are not the spec's classes.
    """
    if not spec.is_classifier or not callable(getattr(estimator, "predict_proba", None)):
        return Capabilities(False)
    classes = _class_text(spec.classes)
    fitted = getattr(estimator, "classes_", None)
    if fitted is None or sorted(_class_text(fitted)) != sorted(classes):
        raise ConfigError(
            f"{who}: {type(estimator).__name__}.classes_ is {None if fitted is None else list(fitted)}, expected "
            f"the classes {spec.classes} of model.label.classes (train on every class, with the spec's values)"
        )
    by_text = dict(zip(classes, spec.classes))
    return Capabilities(True, tuple(by_text[c] for c in _class_text(fitted)))


@dataclass(frozen=True)
class Fitted:
    """A trained, checked estimator and the trainer that made it (``builtin`` or the entry point)."""

    estimator: Any
    trainer: str
    capabilities: Capabilities


def fit(
    frame: pd.DataFrame,
    spec: ModelConfig,
    seed: int,
    project_root: str | Path | None = None,
    sample_weight: np.ndarray | None = None,
) -> Fitted:
    """Train the spec's model: its ``trainer`` entry point, or the built-in default of its task.

    Args:
        frame: checked training rows (``sources.schema.conform``): the feature columns typed by
            kind and the label column holding class values (classifier) or floats (regressor);
            a trainer is given exactly these columns (never times or logged predictions).
        spec: the model spec.
        seed: random seed for the built-in default.
        project_root: where the trainer's module is imported from.
        sample_weight: one weight per row (``retraining.strategy`` ``recency_weighted``), given
            to the built-in model's ``fit`` and to a trainer as ``trainer(frame, spec,
            sample_weight=...)``; a trainer that takes no ``sample_weight`` is refused.

    Returns:
        The estimator, which passed ``check_estimator``, with its trainer and capabilities.

    Raises:
        ConfigError: the trainer cannot be loaded, fails, or returns something unusable.
        DataError: too few rows, or one class only.
    """
    label = spec.label.name
    if len(frame) < 2:
        raise DataError(f"training data has {len(frame)} rows; need at least two")
    y = frame[label]
    if spec.is_classifier and y.nunique() < 2:
        raise DataError(f"training data has {len(frame)} rows but only one class in {label!r}; need at least two")
    x = frame[spec.feature_names]
    if spec.trainer is None:
        estimator, who = default_estimator(spec, seed), BUILTIN
        with threadpool_limits(THREADS):
            estimator.fit(x, y, **weight_argument(estimator, sample_weight))
    else:
        who = spec.trainer
        trainer = load_trainer(spec.trainer, project_root)
        weights = {} if sample_weight is None else {"sample_weight": trainer_weights(trainer, who, sample_weight)}
        try:
            with threadpool_limits(THREADS):
                estimator = trainer(frame[[*spec.feature_names, label]].reset_index(drop=True), spec, **weights)
        except Exception as exc:  # user code: report it as theirs, with its type
            raise ConfigError(f"model.trainer {who!r} failed: {type(exc).__name__}: {exc}") from exc
    caps = check_estimator(estimator, spec, x, f"model.trainer {who!r}" if spec.trainer else "the built-in trainer")
    return Fitted(estimator, who, caps)


def weight_argument(estimator: Any, sample_weight: np.ndarray | None) -> dict[str, Any]:
    """The keyword that gives the built-in model its sample weights (its last step's, in a pipeline)."""
    if sample_weight is None:
        return {}
    steps = getattr(estimator, "steps", None)
    return {f"{steps[-1][0]}__sample_weight" if steps else "sample_weight": sample_weight}


def trainer_weights(trainer: Callable[..., Any], who: str, sample_weight: np.ndarray) -> np.ndarray:
    """``sample_weight`` when the trainer takes it (a parameter of that name, or ``**kwargs``).

    Raises:
        ConfigError: the trainer takes no ``sample_weight``.
    """
    try:
        parameters = inspect.signature(trainer).parameters.values()
    except (TypeError, ValueError):  # a callable that does not say is tried as called
        return sample_weight
    if any(p.name == "sample_weight" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return sample_weight
    raise ConfigError(
        f"model.trainer {who!r}: retraining.strategy recency_weighted gives the trainer sample weights, but it "
        "takes no sample_weight argument: define it as trainer(frame, spec, sample_weight=None) and pass the "
        "weights to the estimator's fit, or choose retraining.strategy kind sliding or expanding"
    )
