"""Training any model the spec describes: built-in defaults per task, trainer entry points, checks, scores."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LinearRegression
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    log_loss,
    mean_absolute_error,
    mean_absolute_percentage_error,
    mean_squared_error,
    precision_score,
    r2_score,
    recall_score,
    roc_auc_score,
)
from sklearn.svm import LinearSVC

from monitoring.config.metric_registry import headline_metric
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.data.requests import requests_of
from monitoring.domain.training.artifacts import ARGMAX_KEY, make_metadata, save_artifact
from monitoring.domain.training.estimators import Capabilities, check_estimator, fit, load_trainer
from monitoring.domain.training.predictions import (
    Predictions,
    predict_frame,
    predicts_most_probable,
    score,
    score_predictions,
)
from monitoring.serving.predict import Predictor
from monitoring.workflows.retrain import train_candidate
from tests.domain import mixed

BINARY = mixed.spec()
MULTI = mixed.spec(classes=["low", "mid", "high"])
REGRESSION = mixed.spec("regression")


@pytest.fixture(scope="module")
def binary_data():
    rng = np.random.default_rng(5)
    return mixed.frame(1500, rng, BINARY), mixed.frame(600, rng, BINARY)


def test_builtin_classifier_learns_numeric_and_categorical_features(binary_data):
    train, holdout = binary_data
    fitted = fit(train, BINARY, seed=1)
    assert fitted.trainer == "builtin" and fitted.capabilities.has_proba
    assert set(fitted.capabilities.proba_classes) == {"No", "Yes"}
    metrics = score(fitted.estimator, holdout, BINARY, fitted.capabilities)
    majority = holdout["target"].value_counts(normalize=True).max()
    assert metrics["accuracy"] > majority + 0.2 and metrics["n"] == 600
    again = fit(train, BINARY, seed=1)  # deterministic for a seed
    pd.testing.assert_frame_equal(
        pd.DataFrame(predict_frame(again.estimator, holdout, BINARY, again.capabilities).proba),
        pd.DataFrame(predict_frame(fitted.estimator, holdout, BINARY, fitted.capabilities).proba),
    )


def test_builtin_model_takes_unknown_categories_and_missing_values(binary_data):
    train, holdout = binary_data
    fitted = fit(train, BINARY, seed=1)
    odd = holdout.iloc[:3].copy()
    odd["contract"] = ["never-seen", None, "month"]
    odd["charges"] = [np.nan, 50.0, np.nan]
    predictions = predict_frame(fitted.estimator, odd, BINARY, fitted.capabilities)
    assert set(predictions.values) <= {"No", "Yes"} and predictions.proba.shape == (3, 2)
    np.testing.assert_allclose(predictions.proba.sum(axis=1), 1.0)


def test_binary_scores_match_sklearn_with_the_positive_class(binary_data):
    train, holdout = binary_data
    spec = mixed.spec(positive="No")  # precision etc. about "No", not the last class
    fitted = fit(train, spec, seed=2)
    got = score(fitted.estimator, holdout, spec, fitted.capabilities)
    y, pred = holdout["target"].to_numpy(), fitted.estimator.predict(holdout[spec.feature_names])
    proba = fitted.estimator.predict_proba(holdout[spec.feature_names])
    no = list(fitted.estimator.classes_).index("No")
    expected = {
        "accuracy": accuracy_score(y, pred),
        "precision": precision_score(y, pred, pos_label="No"),
        "recall": recall_score(y, pred, pos_label="No"),
        "f1": f1_score(y, pred, pos_label="No"),
        "roc_auc": roc_auc_score(y == "No", proba[:, no]),
        "log_loss": log_loss(y, proba, labels=fitted.estimator.classes_),
    }
    assert got.keys() == {*expected, "n"}
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-12), name


def test_multiclass_scores_are_macro_and_match_sklearn():
    rng = np.random.default_rng(6)
    train, holdout = mixed.frame(1500, rng, MULTI), mixed.frame(500, rng, MULTI)
    fitted = fit(train, MULTI, seed=3)
    predictions = predict_frame(fitted.estimator, holdout, MULTI, fitted.capabilities)
    got = score_predictions(holdout["target"].tolist(), predictions, MULTI)
    y = holdout["target"].to_numpy()
    assert got["accuracy"] == pytest.approx(accuracy_score(y, predictions.values.astype(str)))
    assert got["f1"] == pytest.approx(f1_score(y, predictions.values.astype(str), average="macro"))
    sk_order = list(fitted.estimator.classes_)  # sklearn sorts; the spec order is low, mid, high
    proba_sk = predictions.proba[:, [MULTI.classes.index(c) for c in sk_order]]
    assert got["log_loss"] == pytest.approx(log_loss(y, proba_sk, labels=sk_order))
    assert got["roc_auc"] == pytest.approx(roc_auc_score(y, proba_sk, multi_class="ovr", labels=sk_order))


def test_regression_default_and_scores_match_sklearn():
    rng = np.random.default_rng(7)
    train, holdout = mixed.frame(1500, rng, REGRESSION), mixed.frame(500, rng, REGRESSION)
    fitted = fit(train, REGRESSION, seed=4)
    assert fitted.trainer == "builtin" and not fitted.capabilities.has_proba
    got = score(fitted.estimator, holdout, REGRESSION, fitted.capabilities)
    y, pred = holdout["target"].to_numpy(), fitted.estimator.predict(holdout[REGRESSION.feature_names])
    assert got["mae"] == pytest.approx(mean_absolute_error(y, pred))
    assert got["rmse"] == pytest.approx(np.sqrt(mean_squared_error(y, pred)))
    assert got["mape"] == pytest.approx(mean_absolute_percentage_error(y, pred))
    assert got["r2"] == pytest.approx(r2_score(y, pred)) and got["r2"] > 0.8
    assert got["bias"] == pytest.approx(np.mean(pred - y))
    assert headline_metric(REGRESSION.task) == "mae" and headline_metric(BINARY.task) == "accuracy"
    assert headline_metric(REGRESSION.task, "rmse") == "rmse"


def test_integer_classes_stay_integers():
    spec = mixed.spec(classes=[0, 1])
    rng = np.random.default_rng(8)
    fitted = fit(mixed.frame(800, rng, spec), spec, seed=0)
    values = predict_frame(fitted.estimator, mixed.frame(20, rng, spec), spec, fitted.capabilities).values
    assert {type(v) for v in values} == {int} and set(values) <= {0, 1}


def test_training_rejects_too_little_data(binary_data):
    train, _ = binary_data
    with pytest.raises(DataError, match="only one class in 'target'"):
        fit(train.assign(target="No"), BINARY, seed=0)
    with pytest.raises(DataError, match="training data has 1 rows"):
        fit(train.iloc[:1], BINARY, seed=0)


# -- a user's trainer entry point -------------------------------------------------------------
@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project directory with a trainer package; sys.path and imported modules restored afterwards."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    pkg = tmp_path / "usercode"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("usercode"):
            del sys.modules[name]


def write_trainer(project, body: str, module: str = "trainers") -> str:
    (project / "usercode" / f"{module}.py").write_text(textwrap.dedent(body))
    return f"usercode.{module}:train"


def test_trainer_entry_point_is_called_with_the_frame_and_the_spec(project, binary_data):
    entry = write_trainer(
        project,
        """
        from sklearn.compose import make_column_transformer
        from sklearn.impute import SimpleImputer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import OneHotEncoder
        SEEN = []

        def train(frame, spec):
            SEEN.append((list(frame.columns), spec.task, spec.categorical_features))
            prep = make_column_transformer(
                (SimpleImputer(), spec.numeric_features),
                (OneHotEncoder(handle_unknown="ignore"), spec.categorical_features),
            )
            model = make_pipeline(prep, LogisticRegression(max_iter=1000))
            return model.fit(frame[spec.feature_names], frame[spec.label.name])
        """,
    )
    spec = mixed.spec().model_copy(update={"trainer": entry})
    train, holdout = binary_data
    fitted = fit(train.assign(start_ms=1), spec, seed=0, project_root=project)
    assert fitted.trainer == entry and fitted.capabilities.has_proba
    seen = sys.modules["usercode.trainers"].SEEN
    assert seen == [
        (["tenure", "charges", "contract", "internet", "target"], "classification", ["contract", "internet"])
    ]
    assert score(fitted.estimator, holdout, spec)["accuracy"] > 0.7


@pytest.mark.parametrize(
    "body, message",
    [
        ("def train(frame, spec):\n    return 42\n", r"returned a int, which has no predict method"),
        (
            "from sklearn.linear_model import LogisticRegression\n"
            "def train(frame, spec):\n    return LogisticRegression()\n",
            r"LogisticRegression.predict failed on training rows \(NotFittedError",
        ),
        ("def train(frame, spec):\n    raise RuntimeError('no GPU here')\n", r"failed: RuntimeError: no GPU here"),
        (
            "from sklearn.dummy import DummyClassifier\nimport numpy as np\n"
            "def train(frame, spec):\n    return DummyClassifier(strategy='constant', constant='maybe')"
            ".fit(frame[['tenure']], np.where(frame.index % 2, 'maybe', 'No'))\n",
            r"DummyClassifier predicts \['maybe'\], which are not in model.label.classes \['No', 'Yes'\]",
        ),
    ],
    ids=["no-predict", "not-fitted", "raises", "foreign-classes"],
)
def test_trainer_contract_violations_are_config_errors(project, binary_data, body, message):
    spec = mixed.spec().model_copy(update={"trainer": write_trainer(project, body)})
    with pytest.raises(ConfigError, match=message) as info:
        fit(binary_data[0], spec, seed=0, project_root=project)
    assert "model.trainer 'usercode.trainers:train'" in str(info.value)


def test_trainer_that_cannot_be_loaded_names_model_trainer(project):
    with pytest.raises(ConfigError, match=r"model.trainer: cannot import 'usercode.nothere' \(ModuleNotFoundError"):
        load_trainer("usercode.nothere:train", project)
    write_trainer(project, "def other(frame, spec):\n    pass\n")
    with pytest.raises(ConfigError, match="model.trainer: module 'usercode.trainers' has no function 'train'"):
        load_trainer("usercode.trainers:train", project)


def test_classifier_without_predict_proba_is_allowed_and_tracks_no_probability(binary_data):
    train, holdout = binary_data
    x = train[["tenure"]]
    svc = LinearSVC().fit(x, train["target"])
    spec = mixed.spec().model_copy(update={"features": [BINARY.features[0]]})
    caps = check_estimator(svc, spec, train, "test")
    assert not caps.has_proba
    got = score(svc, holdout, spec, caps)
    assert "roc_auc" not in got and "log_loss" not in got and 0 <= got["accuracy"] <= 1


def test_classes_of_a_probabilistic_classifier_must_be_the_spec_classes(binary_data):
    train, _ = binary_data
    dummy = DummyClassifier(strategy="most_frequent").fit(train[BINARY.feature_names], train["target"] == "Yes")
    with pytest.raises(ConfigError, match="predicts"):  # True/False are not "No"/"Yes"
        check_estimator(dummy, BINARY, train, "test")


def test_regressor_must_predict_numbers(binary_data):
    train, _ = binary_data
    labels = DummyClassifier(strategy="most_frequent").fit(train[["tenure"]], train["target"])
    with pytest.raises(ConfigError, match="a regressor must predict finite numbers"):
        check_estimator(labels, REGRESSION, train, "test")
    check_estimator(
        LinearRegression().fit(train[["tenure"]], train["tenure"]),
        REGRESSION.model_copy(update={"features": [REGRESSION.features[0]]}),
        train,
        "test",
    )


def test_scoring_needs_rows():
    with pytest.raises(DataError, match="zero rows"):
        score_predictions([], Predictions(np.empty(0)), REGRESSION)


# -- serving's one model call --------------------------------------------------------------------
#: A trainer whose classifier counts its calls; ``train_thresholded``'s predicts "Yes" from P(Yes) >= 0.3.
COUNTED = """
    import numpy as np
    from sklearn.compose import make_column_transformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    CALLS = []

    class Counted:
        def __init__(self, model, threshold=None):
            self.model, self.threshold = model, threshold

        @property
        def classes_(self):
            return self.model.classes_

        def predict_proba(self, x):
            CALLS.append("predict_proba")
            return self.model.predict_proba(x)

        def predict(self, x):
            CALLS.append("predict")
            if self.threshold is None:
                return self.model.predict(x)
            yes = self.model.predict_proba(x)[:, list(self.classes_).index("Yes")]
            return np.where(yes >= self.threshold, "Yes", "No")

    def _fitted(frame, spec):
        prep = make_column_transformer(
            (SimpleImputer(), spec.numeric_features),
            (OneHotEncoder(handle_unknown="ignore"), spec.categorical_features),
        )
        return make_pipeline(prep, LogisticRegression(max_iter=1000)).fit(frame[spec.feature_names], frame["target"])

    def train(frame, spec):
        return Counted(_fitted(frame, spec))

    def train_thresholded(frame, spec):
        return Counted(_fitted(frame, spec), threshold=0.3)
"""


@pytest.mark.parametrize("function, one_call", [("train", True), ("train_thresholded", False)])
def test_a_trainers_classifier_is_served_by_one_call_when_its_predict_is_the_most_probable_class(
    project, binary_data, tmp_path, function, one_call
):
    """Checked on the held-out rows when trained: a logistic regression's predict is the most probable
    class (served by predict_proba alone); a thresholded one's is not (served by both calls, its predict)."""
    entry = write_trainer(project, COUNTED).replace(":train", f":{function}")
    spec = BINARY.model_copy(update={"trainer": entry})
    train, holdout = binary_data
    candidate = train_candidate(spec, train, holdout, seed=0, project_root=project)
    assert candidate.predict_is_argmax is one_call
    meta = make_metadata(
        spec=spec,
        trained_at_ms=0,
        n_train=len(train),
        holdout={},
        reference={},
        trainer=entry,
        predict_is_argmax=candidate.predict_is_argmax,
    )
    predictor = Predictor.load(save_artifact(candidate.estimator, tmp_path / "models", "mixed", meta))
    assert predictor.artifact.metadata[ARGMAX_KEY] is one_call and predictor.argmax is one_call
    calls = sys.modules["usercode.trainers"].CALLS
    expected = candidate.estimator.predict(holdout[spec.feature_names])
    for i, request in enumerate(requests_of(holdout.iloc[:20], spec)):
        calls.clear()
        result = predictor.predict_one(request)
        assert calls == (["predict_proba"] if one_call else ["predict_proba", "predict"])
        assert result.prediction == expected[i]
    if not one_call:  # the threshold is why: some held-out rows are "Yes" below P(Yes) 0.5
        yes = candidate.estimator.predict_proba(holdout[spec.feature_names])[:, 1]
        assert ((expected == "Yes") & (yes < 0.5)).any()


def test_predicts_most_probable_breaks_ties_as_the_one_call_path_does():
    """The one-call path takes the first of the estimator's classes_ on a tie, in classes_ order."""
    spec = mixed.spec(classes=["low", "mid", "high"])
    caps = Capabilities(True, ("high", "low", "mid"))  # classes_ order, not the spec's
    proba = np.array([[0.4, 0.2, 0.4], [0.1, 0.6, 0.3]])  # spec order: low, mid, high
    assert predicts_most_probable(Predictions(np.array(["high", "mid"], dtype=object), proba), spec, caps)
    assert not predicts_most_probable(Predictions(np.array(["low", "mid"], dtype=object), proba), spec, caps)
    assert not predicts_most_probable(Predictions(np.array(["low"], dtype=object)), spec, caps)  # no probabilities
