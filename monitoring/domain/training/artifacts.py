"""Versioned model artifacts on disk: ``<dir>/<model>/v<N>/model.joblib`` + ``metadata.json`` (spec, reference, holdout)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import joblib
import sklearn

from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.training.estimators import BUILTIN, Capabilities, capabilities_of

MODEL_FILE = "model.joblib"
METADATA_FILE = "metadata.json"
#: Keys ``load_artifact`` insists on (artifacts of earlier versions have them too); ``make_metadata``
#: also writes ``task``, ``spec``, ``trainer``, ``metric`` and ``training_window``.
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
#: Metadata key: the estimator's ``predict`` gave the most probable class on every held-out row
#: (``training.predicts_most_probable``), so serving takes the class from ``predict_proba`` alone.
ARGMAX_KEY = "predict_is_argmax"
#: The parts of the model spec an artifact keeps (enough to serve and score it).
SPEC_KEYS = ("task", "features", "label", "trainer")
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


@dataclass(frozen=True)
class ModelArtifact:
    """A loaded model version: the estimator, its metadata, its spec and where it was read from."""

    estimator: Any
    metadata: dict[str, Any]
    path: str = ""
    capabilities: Capabilities = Capabilities(False)

    @property
    def version(self) -> str:
        return str(self.metadata["version"])

    @property
    def predict_is_argmax(self) -> bool:
        """Whether serving may take the class from the probabilities (one model call, not two).

        True for a classifier with ``predict_proba`` that is the built-in model (its ``predict`` is
        the most probable class by construction) or whose ``predict`` matched the most probable
        class on every held-out row when it was trained (``ARGMAX_KEY``); artifacts written before
        that check keep both calls.
        """
        if not self.capabilities.has_proba:
            return False
        return self.metadata.get("trainer") == BUILTIN or self.metadata.get(ARGMAX_KEY) is True

    @property
    def features(self) -> list[str]:
        return list(self.metadata["features"])

    @property
    def spec(self) -> ModelConfig:
        """The model spec it was trained for (an artifact without one: numeric features, classes as stored)."""
        return spec_of(self.metadata)


def spec_of(metadata: dict[str, Any]) -> ModelConfig:
    """The model spec stored in artifact metadata (or implied by an artifact written before specs).

    Raises:
        DataError: the stored spec is not valid.
    """
    stored = metadata.get("spec")
    if stored is None:
        stored = {
            "features": metadata["features"],
            "label": {"name": metadata["label"], "classes": metadata["classes"]},
        }
    try:
        return ModelConfig.model_validate({"name": str(metadata.get("model_name") or "model"), **stored})
    except ValueError as exc:
        raise DataError(f"artifact metadata holds an invalid model spec: {exc}") from None


def make_metadata(
    *,
    spec: ModelConfig,
    trained_at_ms: int,
    n_train: int,
    holdout: dict[str, Any],
    reference: dict[str, Any],
    trainer: str,
    metric: str | None = None,
    training_window: dict[str, Any] | None = None,
    parent_version: str | None = None,
    predict_is_argmax: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Metadata for ``save_artifact`` (it adds model_name, version and sklearn_version).

    Args:
        spec: the model spec the estimator was trained for.
        trained_at_ms: training time (epoch ms, from the injected clock).
        n_train: rows used for fitting.
        holdout: ``training.score()`` on held-out rows: the task's metrics (None where undefined).
        reference: ``ReferenceStats.to_dict()`` of the training rows (with the spec's kinds).
        trainer: the trainer entry point, or ``builtin``.
        metric: the metric the model is judged on.
        training_window: e.g. ``{"start_ms", "end_ms"}`` of the labelled data used.
        parent_version: the version this one was retrained from.
        predict_is_argmax: ``predict`` gave the most probable class on every held-out row
            (``training.predicts_most_probable``): serving makes one model call per request.
        extra: further JSON-safe fields.

    Returns:
        The metadata dict.
    """
    return {
        "features": spec.feature_names,
        "kinds": spec.kinds,
        "label": spec.label.name,
        "classes": spec.classes,
        "task": spec.task,
        "spec": spec.model_dump(mode="json", include=set(SPEC_KEYS)),
        "trainer": trainer,
        "metric": metric,
        "trained_at_ms": int(trained_at_ms),
        "n_train": int(n_train),
        "holdout": dict(holdout),
        "reference": reference,
        "training_window": training_window,
        "parent_version": parent_version,
        ARGMAX_KEY: bool(predict_is_argmax),
        **extra,
    }


def _check_name(model_name: str) -> None:
    if not _NAME.match(model_name or ""):
        raise DataError(f"model name {model_name!r} cannot be a directory name: use letters, digits, '.', '_', '-'")


def list_versions(artifacts_dir: str | os.PathLike, model_name: str) -> list[str]:
    """Saved versions of a model, oldest first, in numeric order (v2 before v10).

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
    """``v<highest + 1>``, or ``v1`` for a new model."""
    versions = list_versions(artifacts_dir, model_name)
    return f"v{int(versions[-1][1:]) + 1}" if versions else "v1"


def save_artifact(estimator: Any, artifacts_dir: str | os.PathLike, model_name: str, metadata: dict[str, Any]) -> str:
    """Write a new version atomically: files go to a temporary directory that is then renamed.

    Args:
        estimator: the fitted estimator.
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
        joblib.dump(estimator, tmp / MODEL_FILE)
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
    """Read a version directory written by ``save_artifact`` and check the estimator against its spec.

    Raises:
        DataError: naming the path, when a file is missing, unreadable or corrupt, the metadata
            lacks a required key, or the estimator has no ``predict`` or other classes than its spec.
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
        estimator = joblib.load(model_path)
    except _LOAD_ERRORS as exc:
        raise DataError(f"model artifact {model_path}: cannot load the model ({type(exc).__name__}: {exc})") from None
    if not callable(getattr(estimator, "predict", None)):
        raise DataError(f"model artifact {model_path}: a {type(estimator).__name__} has no predict method")
    try:
        capabilities = capabilities_of(estimator, spec_of(metadata), f"model artifact {model_path}")
    except ConfigError as exc:
        raise DataError("; ".join(exc.problems)) from None
    return ModelArtifact(estimator, metadata, path.as_posix(), capabilities)
