"""What a model version keeps to judge its windows beyond the labels, fitted when it is saved and read back for
its windows: the estimation model (performance before labels), each configured slice's counts on the held-out
rows, and a sample of the training rows for the domain classifier (joint drift)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from monitoring.config.model_spec import ModelConfig
from monitoring.config.slices import SlicesConfig
from monitoring.core.errors import DataError
from monitoring.core.logs import KV
from monitoring.domain.estimation.model import EstimationModel
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.metrics.tables import encode_classes
from monitoring.domain.multivariate.classifier import JointReference
from monitoring.domain.slices.model import Slicing, stats_of_rows
from monitoring.domain.training.predictions import Predictions
from monitoring.workflows.estimation import estimation_of, fit_estimation, frame_inputs

log = logging.getLogger(__name__)


def fit_slices(
    slices: SlicesConfig | None, predictions: Predictions, holdout: pd.DataFrame, spec: ModelConfig
) -> dict | None:
    """Each configured slice's counts on the held-out rows (``{"reference": {slice: stats}}``); None without slices."""
    if slices is None:
        return None
    numeric, cats = frame_inputs(holdout, spec)
    if spec.is_classifier:
        found = stats_of_rows(
            slices.by,
            numeric,
            cats,
            y_pred=encode_classes(predictions.values, spec.classes),
            y_true=encode_classes(holdout[spec.label.name].to_numpy(), spec.classes),
            positive=spec.positive_index,
        )
    else:
        label = pd.to_numeric(holdout[spec.label.name], errors="coerce").to_numpy(dtype=float)
        found = stats_of_rows(slices.by, numeric, cats, prediction=predictions.values, label=label)
    return {"reference": found}


def fit_references(
    slices: SlicesConfig | None,
    predictions: Predictions,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    spec: ModelConfig,
    seed: int,
) -> dict[str, Any]:
    """The metadata fields of a version saved now: ``estimation``, ``slices``, ``joint`` (None: not fitted).

    ``predictions`` are those of ``holdout`` by the fit the held-out rows judged: a refit has seen them.
    """
    numeric, cats = frame_inputs(train, spec)
    return {
        "estimation": fit_estimation(predictions, holdout, spec),
        "slices": fit_slices(slices, predictions, holdout, spec),
        "joint": JointReference.fit(numeric, cats, seed).to_dict(),
    }


@dataclass(frozen=True)
class VersionReferences:
    """What a version's windows are judged against beyond labels (each None when the version has none)."""

    drift: ReferenceStats | None = None
    estimation: EstimationModel | None = None
    slicing: Slicing | None = None
    joint: JointReference | None = None

    @classmethod
    def of(cls, metadata: dict[str, Any], version: str, slices: SlicesConfig | None) -> VersionReferences:
        """Read from a version's metadata; a missing or malformed part is logged and left out."""
        try:
            drift = ReferenceStats.from_dict(metadata["reference"])
        except (DataError, KeyError) as exc:
            log.warning("no training reference, drift not computed %s", KV(version=version, error=str(exc)))
            return cls()
        slicing = joint = None
        if slices is not None:
            stored = (metadata.get("slices") or {}).get("reference") or {}
            if not stored:
                log.warning(
                    "slices without a reference in this version: judged once a version has one %s", KV(version=version)
                )
            slicing = Slicing(tuple(slices.by), slices.min_rows, dict(stored))
        if metadata.get("joint") is not None:
            try:
                joint = JointReference.from_dict(metadata["joint"])
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("joint drift reference unreadable %s", KV(version=version, error=str(exc)))
        return cls(drift, estimation_of(metadata, version), slicing, joint)
