"""The served model function: request validation, prediction, and what it tracks through cdsw."""

from __future__ import annotations

import json
import sys
import types
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.serving_cost import EXAMPLES, train_example
from monitoring.config.pipeline import load_config
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.data.requests import requests_of
from monitoring.domain.data.scenario import TelcoScenario
from monitoring.domain.training.artifacts import ARGMAX_KEY, make_metadata, save_artifact
from monitoring.domain.training.estimators import fit
from monitoring.serving import predict as serving
from monitoring.serving.predict import ARTIFACT_ENV, Predictor
from monitoring.serving.tracking import track_prediction
from tests.domain import mixed
from tests.domain.support import FEATURES

LABEL = "cell_tower_failure"
GOOD = {"iot_signal_1": 5.5, "iot_signal_2": 52, "iot_signal_3": 103.2, "iot_signal_4": 40.0}
TELCO = load_config(Path(__file__).resolve().parents[2] / "config" / "pipeline.yaml").model


def saved(root: Path, spec, frame, name: str) -> Path:
    """Train the built-in model for ``spec`` on ``frame`` and save it as ``var/models/<name>/v1``."""
    fitted = fit(frame, spec, seed=31)
    meta = make_metadata(spec=spec, trained_at_ms=0, n_train=len(frame), holdout={}, reference={}, trainer="builtin")
    return Path(save_artifact(fitted.estimator, root / "var" / "models", name, meta))


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    saved(root, TELCO, TelcoScenario().generate(2000, np.random.default_rng(31)), "telco")
    return root


@pytest.fixture
def predictor(artifact_dir) -> Predictor:
    return Predictor.load(artifact_dir / "var" / "models" / "telco" / "v1")


def test_predict_one_returns_class_probability_and_inputs(predictor):
    result = predictor.predict_one({**GOOD, "extra": "ignored"})
    assert result.prediction in (0, 1)
    assert 0.0 <= result.probability <= 1.0
    assert (result.probability > 0.5) == (result.prediction == 1)
    assert result.features == {k: float(v) for k, v in GOOD.items()}
    assert all(type(v) is float for v in result.features.values())
    assert predictor.version == "v1" and predictor.classes == [0, 1]


def test_predict_frame_agrees_with_predict_one(predictor):
    frame = TelcoScenario().generate(50, np.random.default_rng(32))
    batch = predictor.predict_frame(frame)
    for i in (0, 17, 49):
        one = predictor.predict_one(frame.loc[i, FEATURES].to_dict())
        assert one.prediction == batch.values[i]
        assert one.probability == pytest.approx(batch.proba[i, 1], rel=1e-9, abs=1e-12)  # one row vs a batch


@pytest.mark.parametrize(
    "args, message",
    [
        (
            {k: v for k, v in GOOD.items() if k != "iot_signal_3"},
            "feature 'iot_signal_3' is missing from the request; expected a flat JSON object with "
            r"iot_signal_1 \(numeric\)",
        ),
        (
            {**GOOD, "iot_signal_2": "52"},
            "feature 'iot_signal_2' must be a finite number .or null when missing., got '52'",
        ),
        ({**GOOD, "iot_signal_4": float("nan")}, "feature 'iot_signal_4' must be a finite number .*, got nan"),
        ({**GOOD, "iot_signal_1": True}, "feature 'iot_signal_1' must be a finite number .*, got True"),
        ({**GOOD, "iot_signal_1": 10**400}, "feature 'iot_signal_1' must be a finite number .*, got 1000"),
        ({**GOOD, "iot_signal_1": [5.5]}, r"feature 'iot_signal_1' must be a finite number .*, got \[5.5\]"),
        (
            {"dataframe_split": {"columns": FEATURES, "data": [[1, 2, 3, 4]]}},
            "feature 'iot_signal_1' is missing from the request; expected a flat JSON object",
        ),
        ([1, 2, 3, 4], "request must be a JSON object, got list"),
    ],
)
def test_validation_errors_name_the_feature(predictor, args, message):
    with pytest.raises(ValueError, match=message):
        predictor.predict_one(args)


def test_from_env_requires_the_variable(artifact_dir, monkeypatch):
    with pytest.raises(ConfigError, match=f"{ARTIFACT_ENV} is not set"):
        Predictor.from_env({})
    monkeypatch.chdir(artifact_dir)
    assert Predictor.from_env({ARTIFACT_ENV: "var/models/telco/v1"}).version == "v1"
    with pytest.raises(DataError, match="model artifact var/models/telco/v9: no metadata.json"):
        Predictor.from_env({ARTIFACT_ENV: "var/models/telco/v9"})


class FakeCdsw(types.ModuleType):
    """The two cdsw functions the model uses, with CML's semantics: one record per decorated call."""

    def __init__(self) -> None:
        super().__init__("cdsw")
        self.records: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None

    def model_metrics(self, func):
        def wrapper(args):
            self._current = {}
            try:
                prediction = func(args)
            finally:
                metrics, self._current = self._current, None
            record = {"uuid": str(uuid.uuid4()), "metrics": metrics}
            self.records.append(record)
            return {"prediction": prediction, "uuid": record["uuid"]}

        return wrapper

    def track_metric(self, key, value):
        assert self._current is not None, "track_metric outside a decorated call"
        self._current[key] = value


@pytest.fixture
def fake_cdsw(monkeypatch, artifact_dir):
    fake = FakeCdsw()
    monkeypatch.setitem(sys.modules, "cdsw", fake)
    monkeypatch.setattr(serving, "_cached", None)
    monkeypatch.chdir(artifact_dir)
    monkeypatch.setenv(ARTIFACT_ENV, "var/models/telco/v1")
    return fake


def test_predict_tracks_inputs_prediction_probability_and_version(fake_cdsw, predictor):
    out = serving.predict(dict(GOOD))
    expected = predictor.predict_one(GOOD)
    assert out == {"prediction": expected.prediction, "uuid": fake_cdsw.records[0]["uuid"]}
    assert fake_cdsw.records[0]["metrics"] == {
        "input_features": expected.features,
        "prediction": expected.prediction,
        "probability": expected.probability,
        "model_version": "v1",
    }
    assert type(fake_cdsw.records[0]["metrics"]["prediction"]) is int


def test_predict_loads_once_and_rejects_bad_requests_before_tracking(fake_cdsw, monkeypatch):
    serving.predict(dict(GOOD))
    built = serving._cached
    monkeypatch.setenv(ARTIFACT_ENV, "var/models/telco/v404")  # not re-read: loaded once per process
    serving.predict(dict(GOOD))
    assert serving._cached is built
    with pytest.raises(ValueError, match="feature 'iot_signal_4' is missing"):
        serving.predict({k: v for k, v in GOOD.items() if k != "iot_signal_4"})
    assert len(fake_cdsw.records) == 2


def test_predict_without_cdsw_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "cdsw", None)  # makes `import cdsw` fail
    monkeypatch.setattr(serving, "_cached", None)
    with pytest.raises(ConfigError, match="cannot import 'cdsw'"):
        serving.predict(dict(GOOD))


def test_model_file_loads_by_path_like_a_cml_build(artifact_dir, tmp_path):
    """CML imports the model file by path from the build's working directory; the package must resolve."""
    import subprocess
    from pathlib import Path

    model_file = Path(serving.__file__).resolve()
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('cml_model_main', {str(model_file)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "p = module.Predictor.from_env()\n"
        f"print(p.version, p.predict_one({GOOD!r}).prediction in (0, 1))\n"
    )
    env = {"PATH": "/usr/bin:/bin", ARTIFACT_ENV: "var/models/telco/v1"}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=artifact_dir, env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "v1 True"


# -- any spec: categorical features, string and multi-class labels, regression ------------------
@pytest.fixture(scope="module")
def specs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("specs")
    rng = np.random.default_rng(33)
    for name, spec in (
        ("binary", mixed.spec(positive="No")),
        ("multi", mixed.spec(classes=["low", "mid", "high"])),
        ("price", mixed.spec("regression")),
    ):
        saved(root, spec, mixed.frame(800, rng, spec), name)
    return root


ROW = {"tenure": 12, "charges": 80.5, "contract": "month", "internet": "fiber"}


def test_categorical_request_predicts_a_class_value_and_the_positive_class_probability(specs_dir):
    predictor = Predictor.load(specs_dir / "var/models/binary/v1")
    result = predictor.predict_one({**ROW, "contract": "never-seen", "charges": None})
    assert result.prediction in ("No", "Yes") and result.probabilities is None
    expected = predictor.predict_frame(predictor.frame([result.features])).proba[0, 0]  # "No" is positive
    assert result.probability == pytest.approx(expected)
    assert result.features == {"tenure": 12.0, "charges": None, "contract": "never-seen", "internet": "fiber"}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"contract": 3.5}, "feature 'contract' must be a string .or null when missing., got 3.5"),
        ({"contract": ["month"]}, "feature 'contract' must be a string"),
        ({"tenure": "twelve"}, "feature 'tenure' must be a finite number .or null when missing., got 'twelve'"),
    ],
)
def test_request_values_must_match_their_kind(specs_dir, change, message):
    predictor = Predictor.load(specs_dir / "var/models/binary/v1")
    with pytest.raises(ValueError, match=message):
        predictor.predict_one({**ROW, **change})
    assert predictor.predict_one({**ROW, "contract": 2}).features["contract"] == "2"  # whole numbers as text


def test_multiclass_tracks_every_class_probability(specs_dir):
    result = Predictor.load(specs_dir / "var/models/multi/v1").predict_one(ROW)
    assert result.prediction in ("low", "mid", "high") and result.probability is None
    assert list(result.probabilities) == ["low", "mid", "high"]
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    assert max(result.probabilities, key=result.probabilities.get) == result.prediction


def test_regressor_predicts_a_number_and_no_probability(specs_dir):
    result = Predictor.load(specs_dir / "var/models/price/v1").predict_one(ROW)
    assert type(result.prediction) is float and result.probability is None and result.probabilities is None


@pytest.mark.parametrize("name", ["binary", "multi", "price"])
def test_served_model_tracks_exactly_the_contract(specs_dir, monkeypatch, name):
    fake = FakeCdsw()
    monkeypatch.setitem(sys.modules, "cdsw", fake)
    monkeypatch.setattr(serving, "_cached", None)
    monkeypatch.chdir(specs_dir)
    monkeypatch.setenv(ARTIFACT_ENV, f"var/models/{name}/v1")
    out = serving.predict(dict(ROW))
    metrics = fake.records[0]["metrics"]
    assert out["prediction"] == metrics["prediction"]
    expected_keys = {"input_features", "prediction", "model_version"} | {
        "binary": {"probability"},
        "multi": {"probabilities"},
        "price": set(),
    }[name]
    assert set(metrics) == expected_keys and metrics["model_version"] == "v1"
    assert metrics["input_features"] == {"tenure": 12.0, "charges": 80.5, "contract": "month", "internet": "fiber"}
    json.dumps(metrics, allow_nan=False)  # what the metrics store receives is plain JSON


def test_tracking_helper_for_a_users_own_predict_file():
    fake = FakeCdsw()

    @fake.model_metrics
    def predict(args):
        track_prediction(
            {"tenure": np.float64(3.0), "contract": "month", "charges": float("nan")},
            np.str_("Yes"),
            "git-4f2a",
            probability=np.float32(0.75),
            sdk=fake,
        )
        return "Yes"

    assert predict({})["prediction"] == "Yes"
    assert fake.records[0]["metrics"] == {
        "input_features": {"tenure": 3.0, "contract": "month", "charges": None},
        "prediction": "Yes",
        "model_version": "git-4f2a",
        "probability": 0.75,
    }
    assert type(fake.records[0]["metrics"]["prediction"]) is str


@pytest.mark.parametrize("name", list(EXAMPLES))
def test_one_model_call_predicts_what_two_calls_predict_for_every_example_model(tmp_path, name):
    """Each example's first model, trained as bootstrap trains it: the classifiers (the built-in one
    and the churn and credit trainers') are served by predict_proba alone, and answer what predict
    and predict_proba answered together, on every held-out row."""
    path, holdout = train_example(name, tmp_path)
    predictor = Predictor.load(path)
    classifier = predictor.spec.is_classifier
    assert predictor.artifact.metadata[ARGMAX_KEY] is classifier and predictor.argmax is classifier
    one = predictor.predict_frame(holdout)
    predictor.argmax = False
    two = predictor.predict_frame(holdout)
    assert list(one.values) == list(two.values)
    assert (one.proba is None) == (two.proba is None) == (not classifier)
    if classifier:
        np.testing.assert_array_equal(one.proba, two.proba)
    for request in requests_of(holdout.iloc[:: max(1, len(holdout) // 25)], predictor.spec):
        predictor.argmax = False
        both = predictor.predict_one(request)
        predictor.argmax = classifier
        assert predictor.predict_one(request) == both
