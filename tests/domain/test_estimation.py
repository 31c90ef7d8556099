"""Performance estimated before labels: close to the realized metric under covariate shift, blind to concept drift."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.core.errors import DataError
from monitoring.domain.estimation.model import EstimationModel, fit_classifier, fit_regressor
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.windows.compute import compute_windows
from tests.domain.estimation_scenarios import (
    CLASSIFIER,
    HOUR,
    REGRESSOR,
    classifier_records,
    classifier_rows,
    regressor_records,
    regressor_rows,
)


def fitted_classifier(seed: int) -> EstimationModel:
    _, _, s, y = classifier_rows(np.random.default_rng(seed), 4000)
    model = fit_classifier(np.column_stack([1 - s, s]), y, positive=1)
    return EstimationModel.from_dict(model.to_dict())  # as a window reads it from the artifact


def one_window(records, spec, model):
    (window,) = compute_windows(records_to_columns(records, spec), HOUR, estimation=model)
    return window


@pytest.mark.parametrize("seed", [3, 4, 5])
def test_cbpe_follows_the_realized_metrics_under_covariate_shift(seed):
    model = fitted_classifier(seed)
    rng = np.random.default_rng(seed + 100)
    stable = one_window(classifier_records(*classifier_rows(rng, 3000)), CLASSIFIER, model)
    # inputs crowd the decision boundary: the model gets worse, the concept is unchanged
    shifted = one_window(classifier_records(*classifier_rows(rng, 3000, shift=1.0, spread=0.35)), CLASSIFIER, model)
    assert shifted.accuracy < stable.accuracy - 0.1  # a real drop, which the estimate must see
    for w in (stable, shifted):
        for metric in ("accuracy", "precision", "recall", "f1", "roc_auc"):
            item = w.estimated[metric]
            assert item["rows"] == w.predictions
            assert item["realized"] == getattr(w, metric)
            assert item["error"] == pytest.approx(item["value"] - item["realized"])
            assert abs(item["error"]) < 0.05, (metric, item)
        low, high = w.estimated["accuracy"]["low"], w.estimated["accuracy"]["high"]
        assert low < w.accuracy < high
    assert shifted.estimated["accuracy"]["value"] < stable.estimated["accuracy"]["value"] - 0.1


def test_cbpe_estimates_windows_whose_labels_have_not_landed():
    model = fitted_classifier(7)
    rng = np.random.default_rng(8)
    w = one_window(classifier_records(*classifier_rows(rng, 2000), labelled=0.0), CLASSIFIER, model)
    assert w.labelled == 0 and w.accuracy is None
    assert 0.7 < w.estimated["accuracy"]["value"] < 0.95
    assert w.estimated["accuracy"]["realized"] is None and w.estimated["accuracy"]["error"] is None


def test_cbpe_is_blind_to_concept_drift():
    """The documented blind spot: P(label | inputs) changes, the inputs do not, the estimate stays put."""
    model = fitted_classifier(9)
    rng = np.random.default_rng(10)
    drifted = one_window(classifier_records(*classifier_rows(rng, 3000, flipped=True)), CLASSIFIER, model)
    item = drifted.estimated["accuracy"]
    assert drifted.accuracy < 0.3  # the concept flipped: the model is mostly wrong
    assert item["value"] > 0.75  # the estimate does not see it
    assert item["error"] > 0.45 and not item["low"] <= drifted.accuracy <= item["high"]


@pytest.mark.parametrize("seed", [11, 12])
def test_loss_estimation_follows_mae_and_rmse_under_covariate_shift(seed):
    rng = np.random.default_rng(seed)
    x1, x2, pred, y = regressor_rows(rng, 4000)
    model = EstimationModel.from_dict(fit_regressor(pred, y, {"x1": x1, "x2": x2}, {}).to_dict())
    stable = one_window(regressor_records(*regressor_rows(rng, 3000)), REGRESSOR, model)
    shifted = one_window(regressor_records(*regressor_rows(rng, 3000, shift=2.0)), REGRESSOR, model)
    assert shifted.mae > 1.5 * stable.mae  # the inputs moved where the model errs more
    for w in (stable, shifted):
        for metric in ("mae", "rmse"):
            item = w.estimated[metric]
            assert abs(item["error"]) < 0.1 * item["realized"], (metric, item)
            assert item["low"] < item["value"] < item["high"]


def test_loss_estimation_is_blind_to_concept_drift():
    rng = np.random.default_rng(13)
    x1, x2, pred, y = regressor_rows(rng, 4000)
    model = fit_regressor(pred, y, {"x1": x1, "x2": x2}, {})
    drifted = one_window(regressor_records(*regressor_rows(rng, 3000, offset=4.0)), REGRESSOR, model)
    item = drifted.estimated["mae"]
    assert drifted.mae > 1.8 * item["value"]  # the target moved, the inputs did not
    assert item["error"] < 0 and not item["low"] <= drifted.mae <= item["high"]


def test_estimation_uses_categorical_features_and_missing_values():
    rng = np.random.default_rng(14)
    n = 3000
    group = rng.choice(["a", "b", "c"], n)
    pred = rng.normal(0, 1, n)
    y = pred + rng.normal(0, np.where(group == "c", 4.0, 0.5))
    model = fit_regressor(pred, y, {}, {"group": group})
    spec = REGRESSOR.model_copy(update={"features": [type(REGRESSOR.features[0])(name="group", kind="categorical")]})
    from tests.domain.support import T0, prediction

    def records(share_c: float) -> list[dict]:
        g = np.where(rng.random(1000) < share_c, "c", "a")
        p = rng.normal(0, 1, 1000)
        t = p + rng.normal(0, np.where(g == "c", 4.0, 0.5))
        return [
            prediction(f"g{share_c}-{i}", T0 + i, float(p[i]), label=float(t[i]), features={"group": str(g[i])})
            for i in range(1000)
        ]

    calm, rough = one_window(records(0.05), spec, model), one_window(records(0.8), spec, model)
    assert rough.estimated["mae"]["value"] > 2 * calm.estimated["mae"]["value"]
    assert abs(rough.estimated["mae"]["error"]) < 0.15 * rough.mae


def test_a_malformed_estimation_model_is_a_clear_error():
    with pytest.raises(DataError, match="expected format 1"):
        EstimationModel.from_dict({"format": 99})
    good = fit_regressor(np.arange(50.0), np.arange(50.0) + 1, {"x1": np.arange(50.0)}, {}).to_dict()
    good["loss"]["abs_coef"] = [1.0]
    with pytest.raises(DataError, match="coefficients"):
        EstimationModel.from_dict(good)
    with pytest.raises(DataError, match="both outcomes"):
        fit_classifier(np.column_stack([np.full(40, 0.5), np.full(40, 0.5)]), np.zeros(40, int), positive=1)
