"""Versioned artifacts on disk: metadata with the spec, reference and holdout; checks on load."""

from __future__ import annotations

import json

import joblib
import numpy as np
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

from monitoring.core.errors import DataError
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.training.artifacts import (
    ModelArtifact,
    list_versions,
    load_artifact,
    make_metadata,
    next_version,
    save_artifact,
)
from monitoring.domain.training.estimators import fit
from monitoring.domain.training.predictions import score
from tests.domain import mixed

NAME = "churn-model"
SPEC = mixed.spec()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(21)
    return mixed.frame(1200, rng, SPEC), mixed.frame(400, rng, SPEC)


@pytest.fixture(scope="module")
def model(data):
    return fit(data[0], SPEC, seed=21).estimator


def metadata(train, holdout, model, spec=SPEC):
    return make_metadata(
        spec=spec,
        trained_at_ms=1_795_428_000_000,
        n_train=len(train),
        holdout=score(model, holdout, spec),
        reference=ReferenceStats.fit(train, spec.feature_names, kinds=spec.kinds).to_dict(),
        trainer="builtin",
        metric="accuracy",
        training_window={"start_ms": 1, "end_ms": 2},
    )


def test_save_and_load_round_trip_keeps_spec_reference_and_holdout(tmp_path, model, data):
    train, holdout = data
    meta = metadata(train, holdout, model)
    rel = save_artifact(model, tmp_path / "models", NAME, meta)
    assert rel == f"{(tmp_path / 'models').as_posix()}/{NAME}/v1"
    artifact = load_artifact(rel)
    assert isinstance(artifact, ModelArtifact)
    assert artifact.version == "v1" and artifact.features == SPEC.feature_names
    assert artifact.spec.kinds == SPEC.kinds and artifact.spec.classes == ["No", "Yes"]
    assert artifact.metadata["task"] == "classification" and artifact.metadata["trainer"] == "builtin"
    assert artifact.metadata["sklearn_version"] == sklearn.__version__
    assert artifact.metadata["holdout"] == meta["holdout"] and set(meta["holdout"]) >= {"accuracy", "roc_auc", "n"}
    assert artifact.capabilities.has_proba
    np.testing.assert_array_equal(
        artifact.estimator.predict_proba(holdout[SPEC.feature_names]), model.predict_proba(holdout[SPEC.feature_names])
    )
    assert ReferenceStats.from_dict(artifact.metadata["reference"]).kinds == SPEC.kinds
    assert not [p.name for p in (tmp_path / "models" / NAME).iterdir() if p.name.startswith(".tmp")]


def test_an_artifact_from_before_model_specs_loads_as_numeric(tmp_path):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, 2))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path = save_artifact(model, tmp_path, NAME, {})
    meta_file = tmp_path / NAME / "v1" / "metadata.json"
    old = {  # exactly the keys the earlier make_metadata wrote
        "features": ["a", "b"],
        "label": "y",
        "classes": [0, 1],
        "trained_at_ms": 0,
        "n_train": 200,
        "holdout": {"accuracy": 0.9},
        "reference": {},
        "training_window": None,
        "parent_version": None,
        "model_name": NAME,
        "version": "v1",
        "sklearn_version": sklearn.__version__,
    }
    meta_file.write_text(json.dumps(old))
    artifact = load_artifact(path)
    assert artifact.spec.kinds == {"a": "numeric", "b": "numeric"} and artifact.spec.classes == [0, 1]
    assert artifact.capabilities.proba_classes == (0, 1)


def test_relative_artifacts_dir_gives_a_relative_path(tmp_path, monkeypatch, model, data):
    monkeypatch.chdir(tmp_path)
    rel = save_artifact(model, "var/models", NAME, metadata(*data, model))
    assert rel == f"var/models/{NAME}/v1"
    assert load_artifact(rel).version == "v1"


def test_versions_are_numeric_not_lexicographic(tmp_path, model, data):
    root = tmp_path / "models"
    assert list_versions(root, NAME) == [] and next_version(root, NAME) == "v1"
    for n in (1, 2, 9, 10):
        (root / NAME / f"v{n}").mkdir(parents=True)
    (root / NAME / "v01").mkdir()
    (root / NAME / "latest").mkdir()
    (root / NAME / "v3.txt").write_text("not a version")
    assert list_versions(root, NAME) == ["v1", "v2", "v9", "v10"]
    assert next_version(root, NAME) == "v11"
    assert save_artifact(model, root, NAME, metadata(*data, model)).endswith("/v11")


def test_corrupt_model_file_is_a_data_error_naming_the_path(tmp_path, model, data):
    path = save_artifact(model, tmp_path, NAME, metadata(*data, model))
    model_file = tmp_path / NAME / "v1" / "model.joblib"
    model_file.write_bytes(model_file.read_bytes()[:200])
    with pytest.raises(DataError, match=f"model artifact {model_file}: cannot load the model"):
        load_artifact(path)
    model_file.write_bytes(b"this is not a pickle")
    with pytest.raises(DataError, match=f"model artifact {model_file}: cannot load the model"):
        load_artifact(path)


def test_an_estimator_that_does_not_fit_its_spec_is_refused_on_load(tmp_path, model, data):
    path = save_artifact(model, tmp_path, NAME, metadata(*data, model))
    model_file = tmp_path / NAME / "v1" / "model.joblib"
    joblib.dump({"not": "a model"}, model_file)
    with pytest.raises(DataError, match=f"model artifact {model_file}: a dict has no predict method"):
        load_artifact(path)
    other = mixed.spec(classes=["a", "b"])
    path = save_artifact(
        model,
        tmp_path,
        NAME,
        metadata(*data, model, spec=SPEC)
        | {"spec": other.model_dump(mode="json", include={"task", "features", "label", "trainer"})},
    )
    with pytest.raises(DataError, match=r"classes_ is \['No', 'Yes'\], expected the classes \['a', 'b'\]"):
        load_artifact(path)


def test_missing_or_incomplete_metadata_is_a_data_error(tmp_path, model, data):
    with pytest.raises(DataError, match=f"model artifact {tmp_path / 'nope'}: no metadata.json"):
        load_artifact(tmp_path / "nope")
    path = save_artifact(model, tmp_path, NAME, metadata(*data, model))
    meta_file = tmp_path / NAME / "v1" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    del meta["features"], meta["classes"]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=f"model artifact {meta_file}: metadata lacks features, classes"):
        load_artifact(path)
    meta_file.write_text("{not json")
    with pytest.raises(DataError, match=f"model artifact {meta_file}: unreadable metadata"):
        load_artifact(path)


def test_unsafe_model_name_and_non_json_metadata_are_rejected(tmp_path, model, data):
    with pytest.raises(DataError, match="model name '../x' cannot be a directory name"):
        save_artifact(model, tmp_path, "../x", {})
    with pytest.raises(DataError, match="is not JSON-safe"):
        save_artifact(model, tmp_path, NAME, {**metadata(*data, model), "bad": float("nan")})
    assert list_versions(tmp_path, NAME) == []
