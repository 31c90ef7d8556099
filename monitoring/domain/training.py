"""Training, scoring and versioned model artifacts (``<dir>/<model>/v<N>/model.joblib`` + metadata)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, precision_recall_fscore_support
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from monitoring.core.errors import DataError

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
#: Keys ``load_artifact`` insists on; ``make_metadata`` also writes ``training_window`` (optional).
REQUIRED_METADATA = (
    "model_name",
    "version",
    "trained_at_ms",
    "features",
    "label",
    "classes",
    "n_train",
    "holdout",
    "reference",
    "parent_version",
    "sklearn_version",
)
_VERSION = re.compile(r"^v([1-9][0-9]*)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
#: Errors joblib/pickle raise on a truncated or foreign file.
_LOAD_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    AttributeError,
    ImportError,
    pickle.UnpicklingError,
)


def _xy(frame: pd.DataFrame, features: Sequence[str], label: str) -> tuple[np.ndarray, np.ndarray]:
    missing = [c for c in [*features, label] if c not in frame.columns]
    if missing:
        raise DataError(f"data has no column(s) {', '.join(missing)} (columns: {', '.join(map(str, frame.columns))})")
    x = frame[list(features)].to_numpy(dtype=float)
    y = frame[label].to_numpy(dtype=float)
    bad = ~np.isfinite(x).all(axis=1) | ~np.isfinite(y)
    if bad.any():
        raise DataError(
            f"{int(bad.sum())} of {len(frame)} rows have a missing or non-finite feature or label "
            f"(first at row {int(np.flatnonzero(bad)[0])}); filter them before training or scoring"
        )
    if (y != np.round(y)).any():
        raise DataError(f"label column {label!r} has non-integer values")
    return x, y.astype(np.int64)


def train_model(frame: pd.DataFrame, features: Sequence[str], label: str, seed: int) -> Pipeline:
    """Fit scaler -> degree-2 interactions -> logistic regression (about 0.05 s on 5k rows).

    Args:
        frame: labelled rows.
        features: feature columns, in the order the model will see them.
        label: integer label column.
        seed: random seed (kept for reproducibility of solvers that use it).

    Returns:
        The fitted pipeline; ``feature_names_in_`` holds ``features``.

    Raises:
        DataError: missing columns, non-finite values, or fewer than two classes.
    """
    x, y = _xy(frame, features, label)
    if np.unique(y).size < 2:
        raise DataError(f"training data has {len(y)} rows but only one class in {label!r}; need at least two")
    pipeline = Pipeline(
        [
            ("scale", StandardScaler()),
            ("interactions", PolynomialFeatures(degree=2, include_bias=False)),
            ("classifier", LogisticRegression(C=1.0, max_iter=5000, random_state=seed)),
        ]
    )
    pipeline.fit(pd.DataFrame(x, columns=list(features)), y)
    return pipeline


def score(pipeline: Pipeline, frame: pd.DataFrame, features: Sequence[str], label: str) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of a pipeline on labelled rows.

    Binary models (classes {0, 1}) report class 1 as positive; others report macro averages.
    Undefined ratios are 0 (sklearn ``zero_division=0``).

    Args:
        pipeline: a fitted pipeline.
        frame: labelled rows.
        features: feature columns.
        label: label column.

    Returns:
        ``{"accuracy", "precision", "recall", "f1", "n"}``.

    Raises:
        DataError: missing columns, non-finite values, or no rows.
    """
    x, y = _xy(frame, features, label)
    if len(y) == 0:
        raise DataError("cannot score a model on zero rows")
    pred = pipeline.predict(pd.DataFrame(x, columns=list(features)))
    binary = set(pipeline.classes_.tolist()) == {0, 1}
    p, r, f, _ = precision_recall_fscore_support(
        y, pred, average="binary" if binary else "macro", pos_label=1, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(p),
        "recall": float(r),
        "f1": float(f),
        "n": int(len(y)),
    }


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded model version: the pipeline, its metadata and where it was read from."""

    pipeline: Pipeline
    metadata: dict[str, Any]
    path: str = ""

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def features(self) -> list[str]:
        return list(self.metadata["features"])


def make_metadata(
    *,
    features: Sequence[str],
    label: str,
    classes: Sequence[int],
    trained_at_ms: int,
    n_train: int,
    holdout: dict[str, Any],
    reference: dict[str, Any],
    training_window: dict[str, Any] | None = None,
    parent_version: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Metadata for ``save_artifact`` (it adds model_name, version and sklearn_version).

    Args:
        features: feature names in model order.
        label: label column.
        classes: class labels.
        trained_at_ms: training time (epoch ms, from the injected clock).
        n_train: rows used for fitting.
        holdout: ``score()`` result on held-out rows.
        reference: ``ReferenceStats.to_dict()`` of the training rows.
        training_window: e.g. ``{"start_ms", "end_ms"}`` of the labelled data used.
        parent_version: the version this one was retrained from.
        extra: further JSON-safe fields.

    Returns:
        The metadata dict.
    """
    return {
        "features": list(features),
        "label": label,
        "classes": [int(c) for c in classes],
        "trained_at_ms": int(trained_at_ms),
        "n_train": int(n_train),
        "holdout": dict(holdout),
        "reference": reference,
        "training_window": training_window,
        "parent_version": parent_version,
        **extra,
    }


def _check_name(model_name: str) -> None:
    if not _NAME.match(model_name or ""):
        raise DataError(f"model name {model_name!r} cannot be a directory name: use letters, digits, '.', '_', '-'")


def list_versions(artifacts_dir: str | os.PathLike, model_name: str) -> list[str]:
    """Saved versions of a model, oldest first, in numeric order (v2 before v10).

    Args:
        artifacts_dir: the artifacts root (``state.artifacts_dir``).
        model_name: the model's directory name.

    Returns:
        Version names such as ``["v1", "v2", "v10"]``; empty when none exist.
    """
    _check_name(model_name)
    root = Path(artifacts_dir) / model_name
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in root.iterdir() if p.is_dir() and (m := _VERSION.match(p.name))]
    return [name for _, name in sorted(found)]


def next_version(artifacts_dir: str | os.PathLike, model_name: str) -> str:
    """The version name after the highest existing one.

    Args:
        artifacts_dir: the artifacts root.
        model_name: the model's directory name.

    Returns:
        ``v<highest + 1>``, or ``v1`` for a new model.
    """
    versions = list_versions(artifacts_dir, model_name)
    return f"v{int(versions[-1][1:]) + 1}" if versions else "v1"


def save_artifact(
    pipeline: Pipeline, artifacts_dir: str | os.PathLike, model_name: str, metadata: dict[str, Any]
) -> str:
    """Write a new version atomically: files go to a temporary directory that is then renamed.

    Args:
        pipeline: the fitted pipeline.
        artifacts_dir: the artifacts root.
        model_name: the model's directory name.
        metadata: JSON-safe metadata (see ``make_metadata``); model_name, version and
            sklearn_version are filled in.

    Returns:
        The version directory ``<artifacts_dir>/<model_name>/<version>`` (relative when
        ``artifacts_dir`` is), in POSIX form: what ``CML_MONITOR_MODEL_ARTIFACT`` expects.

    Raises:
        DataError: the model name is not a safe directory name or metadata is not JSON-safe.
    """
    _check_name(model_name)
    root = Path(artifacts_dir) / model_name
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it private; builds and other engines must read it
        joblib.dump(pipeline, tmp / MODEL_FILE)
        for _ in range(100):  # another writer may take the same version between listing and renaming
            version = next_version(artifacts_dir, model_name)
            meta = {**metadata, "model_name": model_name, "version": version, "sklearn_version": sklearn.__version__}
            try:
                text = json.dumps(meta, indent=2, sort_keys=True, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise DataError(f"artifact metadata for {model_name} is not JSON-safe: {exc}") from None
            (tmp / METADATA_FILE).write_text(text, encoding="utf-8")
            try:
                os.rename(tmp, root / version)
            except OSError:
                if (root / version).exists():
                    continue
                raise
            return (Path(artifacts_dir) / model_name / version).as_posix()
        raise DataError(f"could not claim a new version under {root} after 100 attempts")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def load_artifact(path: str | os.PathLike) -> ModelArtifact:
    """Read a version directory written by ``save_artifact``.

    Args:
        path: the version directory.

    Returns:
        The artifact.

    Raises:
        DataError: naming the path, when a file is missing, unreadable, corrupt, or the
            metadata lacks a required key.
    """
    path = Path(path)
    meta_path, model_path = path / METADATA_FILE, path / MODEL_FILE
    try:
        metadata = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"model artifact {path}: no {METADATA_FILE} (is this a version directory?)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(f"model artifact {meta_path}: unreadable metadata ({exc})") from None
    if not isinstance(metadata, dict):
        raise DataError(f"model artifact {meta_path}: expected a JSON object")
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    if missing:
        raise DataError(f"model artifact {meta_path}: metadata lacks {', '.join(missing)}")
    if not model_path.is_file():
        raise DataError(f"model artifact {path}: no {MODEL_FILE}")
    try:
        pipeline = joblib.load(model_path)
    except _LOAD_ERRORS as exc:
        raise DataError(f"model artifact {model_path}: cannot load the model ({type(exc).__name__}: {exc})") from None
    if not (hasattr(pipeline, "predict_proba") and hasattr(pipeline, "classes_")):
        raise DataError(f"model artifact {model_path}: expected a fitted classifier, got {type(pipeline).__name__}")
    return ModelArtifact(pipeline=pipeline, metadata=metadata, path=path.as_posix())
