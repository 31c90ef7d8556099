"""Training, scoring and versioned artifacts on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sklearn
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

from monitoring.core.errors import DataError
from monitoring.domain.data import TelcoScenario
from monitoring.domain.drift import ReferenceStats
from monitoring.domain.training import (
    ModelArtifact,
    list_versions,
    load_artifact,
    make_metadata,
    next_version,
    save_artifact,
    score,
    train_model,
)
from tests.domain.support import FEATURES

LABEL = "cell_tower_failure"
NAME = "telco-cell-tower-failure"


@pytest.fixture(scope="module")
def data():
    scenario = TelcoScenario()
    rng = np.random.default_rng(21)
    return scenario.generate(5000, rng), scenario.generate(1000, rng)


@pytest.fixture(scope="module")
def model(data):
    return train_model(data[0], FEATURES, LABEL, seed=21)


def metadata(train, holdout, model):
    return make_metadata(
        features=FEATURES,
        label=LABEL,
        classes=[0, 1],
        trained_at_ms=1_795_428_000_000,
        n_train=len(train),
        holdout=score(model, holdout, FEATURES, LABEL),
        reference=ReferenceStats.fit(train, FEATURES).to_dict(),
        training_window={"start_ms": 1, "end_ms": 2},
        parent_version=None,
    )


def test_training_is_deterministic(data):  # how fast it is is the benchmarks' question, never a test's
    first = train_model(data[0], FEATURES, LABEL, seed=3)
    second = train_model(data[0], FEATURES, LABEL, seed=3)
    probe = data[1][FEATURES]
    np.testing.assert_array_equal(first.predict_proba(probe), second.predict_proba(probe))
    assert list(first.feature_names_in_) == FEATURES


def test_score_matches_sklearn(model, data):
    holdout = data[1]
    pred = model.predict(holdout[FEATURES])
    y = holdout[LABEL].to_numpy()
    assert score(model, holdout, FEATURES, LABEL) == {
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred, zero_division=0),
        "recall": recall_score(y, pred, zero_division=0),
        "f1": f1_score(y, pred, zero_division=0),
        "n": 1000,
    }


def test_training_rejects_bad_data(data):
    train = data[0].copy()
    with pytest.raises(DataError, match="data has no column.s. cell_tower_failure"):
        train_model(train.drop(columns=[LABEL]), FEATURES, LABEL, seed=0)
    train.loc[7, "iot_signal_2"] = np.nan
    with pytest.raises(DataError, match="1 of 5000 rows have a missing or non-finite feature or label .first at row 7"):
        train_model(train, FEATURES, LABEL, seed=0)
    one_class = data[0].assign(**{LABEL: 0})
    with pytest.raises(DataError, match="only one class"):
        train_model(one_class, FEATURES, LABEL, seed=0)


def test_save_and_load_round_trip(tmp_path, model, data):
    train, holdout = data
    meta = metadata(train, holdout, model)
    rel = save_artifact(model, tmp_path / "models", NAME, meta)
    assert rel == f"{(tmp_path / 'models').as_posix()}/{NAME}/v1"
    artifact = load_artifact(rel)
    assert isinstance(artifact, ModelArtifact)
    assert artifact.version == "v1" and artifact.features == FEATURES
    assert artifact.metadata["model_name"] == NAME
    assert artifact.metadata["sklearn_version"] == sklearn.__version__
    assert artifact.metadata["holdout"] == meta["holdout"]
    np.testing.assert_array_equal(
        artifact.pipeline.predict_proba(holdout[FEATURES]), model.predict_proba(holdout[FEATURES])
    )
    ReferenceStats.from_dict(artifact.metadata["reference"])
    assert not [p.name for p in (tmp_path / "models" / NAME).iterdir() if p.name.startswith(".tmp")]


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
