"""A model version's estimation model: fitted on its held-out rows when it is saved, read back for its windows."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import DataError
from monitoring.core.logs import KV
from monitoring.domain.estimation.model import EstimationModel, fit_classifier, fit_regressor
from monitoring.domain.metrics.tables import encode_classes
from monitoring.domain.training.predictions import Predictions
from monitoring.domain.windows.results import WindowMetrics

log = logging.getLogger(__name__)

#: The artifact metadata key the estimation model is kept under.
METADATA_KEY = "estimation"


def frame_inputs(frame: pd.DataFrame, spec: ModelConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """A frame's numeric features as floats (NaN: missing) and categorical ones as text (None: missing)."""
    numeric = {n: pd.to_numeric(frame[n], errors="coerce").to_numpy(dtype=float) for n in spec.numeric_features}
    cats = {n: frame[n].map(lambda v: None if pd.isna(v) else str(v)).to_numpy() for n in spec.categorical_features}
    return numeric, cats


def fit_estimation(predictions: Predictions, holdout: pd.DataFrame, spec: ModelConfig) -> dict[str, Any] | None:
    """The estimation model of a trained candidate, fitted on its predictions of its held-out rows, as
    metadata; None when it cannot be fitted (a classifier without probabilities, too few held-out rows,
    one class only): said in the log, and its windows are then judged on labels alone.
    """
    try:
        if spec.is_classifier:
            if predictions.proba is None:
                raise DataError("the model has no predict_proba: CBPE needs probabilities")
            y = encode_classes(holdout[spec.label.name].to_numpy(), spec.classes)
            known = y >= 0
            model = fit_classifier(predictions.proba[known], y[known], spec.positive_index)
        else:
            numeric, cats = frame_inputs(holdout, spec)
            target = pd.to_numeric(holdout[spec.label.name], errors="coerce").to_numpy()
            model = fit_regressor(predictions.values, target, numeric, cats)
    except DataError as exc:
        log.warning("performance estimation not fitted %s", KV(rows=len(holdout), error=str(exc)))
        return None
    return model.to_dict()


def estimation_of(metadata: dict[str, Any], version: str) -> EstimationModel | None:
    """The version's estimation model; None when it has none (saved before issue 24) or it is malformed (logged)."""
    data = metadata.get(METADATA_KEY)
    if data is None:
        return None
    try:
        return EstimationModel.from_dict(data)
    except DataError as exc:
        log.warning("estimation model unreadable, performance not estimated %s", KV(version=version, error=str(exc)))
        return None


def estimate_fields(windows: list[WindowMetrics], metric: str) -> dict[str, Any]:
    """VERDICT fields of performance estimated before labels: the newest window's estimate of ``metric``
    (or of the first metric estimated) with its interval, and the estimation error of the newest window
    whose labels have landed (``estimation_error``: estimate - realized); empty without estimates."""
    newest = next((w for w in reversed(windows) if w.estimated), None)
    if newest is None:
        return {}
    name = metric if newest.estimate(metric) is not None else next(iter(newest.estimated))
    item = newest.estimated[name]
    fields: dict[str, Any] = {
        "estimated_metric": name,
        "estimated": _round(item.get("value")),
        "estimated_interval": f"{_round(item.get('low'))}..{_round(item.get('high'))}",
    }
    checked = next((w for w in reversed(windows) if (w.estimated.get(name) or {}).get("error") is not None), None)
    if checked is not None:
        fields["estimation_error"] = _round(checked.estimated[name]["error"])
    return fields


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
