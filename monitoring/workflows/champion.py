"""The champion's scores on the challenger's held-out rows: re-scored from its artifact, or from its own logs."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from monitoring.core.errors import DataError
from monitoring.core.logs import KV
from monitoring.domain.training.artifacts import METADATA_FILE, load_artifact
from monitoring.domain.training.predictions import Predictions, predict_frame, score_predictions
from monitoring.state.store import DeploymentRow
from monitoring.workflows.context import Context
from monitoring.workflows.retrain import LOGGED_DEPLOYMENT, LOGGED_PREDICTION, Candidate

log = logging.getLogger(__name__)

#: Fewest held-out rows a champion without an artifact must have logged predictions for.
MIN_LOGGED_ROWS = 10


@dataclass(frozen=True)
class Scores:
    """Champion and challenger metrics on the same rows, and how the champion was judged."""

    champion: dict[str, Any]
    challenger: dict[str, Any]
    rows: int
    how: str
    y_true: np.ndarray | None = None
    champion_predictions: Predictions | None = None
    challenger_predictions: Predictions | None = None
    """The labels and both models' predictions of the same rows (for the statistical gate)."""


def champion_scores(ctx: Context, current: DeploymentRow, candidate: Candidate) -> Scores:
    """Score the serving champion and the challenger on the same held-out rows.

    A champion cml-monitor trained (its artifact is in ``state.artifacts_dir``) predicts the
    held-out rows again. A champion deployed by other means is judged from the predictions it
    logged for those rows (the metrics store's records), and the challenger on the same rows.

    Raises:
        DataError: the champion's artifact is corrupt or needs features the rows lack; a foreign
            champion whose held-out rows carry no logged predictions of its own.
    """
    spec = ctx.cfg.model
    holdout = candidate.holdout
    path = ctx.artifacts_dir / spec.name / (current.version or "?")
    if current.version and (path / METADATA_FILE).is_file():
        artifact = load_artifact(path)
        missing = [f for f in artifact.spec.feature_names if f not in holdout.columns]
        if missing:
            raise DataError(f"champion {current.version} needs features the held-out rows lack: {', '.join(missing)}")
        predictions = predict_frame(artifact.estimator, holdout, artifact.spec, artifact.capabilities)
        y = holdout[spec.label.name].to_numpy()
        champion = score_predictions(y.tolist(), predictions, spec)
        mine = candidate.holdout_predictions
        return Scores(champion, candidate.holdout_metrics, len(holdout), "artifact", y, predictions, mine)
    rows = holdout
    if LOGGED_DEPLOYMENT in rows.columns:
        rows = rows[rows[LOGGED_DEPLOYMENT] == current.deployment_crn]
    if LOGGED_PREDICTION not in rows.columns:
        raise DataError(
            f"champion {current.version or '?'} of {spec.name} was not trained by cml-monitor (no artifact at "
            f"{path}) and the held-out rows from data.retraining.source carry no logged predictions to judge it "
            "by: retrain from the metrics store (data.retraining.source kind: metrics_store)"
        )
    logged = rows[LOGGED_PREDICTION].to_numpy(dtype=object)
    known = np.array([v is not None and v == v for v in logged], dtype=bool)  # v == v: not NaN
    rows, logged = rows[known], logged[known]
    if len(rows) < MIN_LOGGED_ROWS:
        raise DataError(
            f"champion {current.version or '?'} was not trained by cml-monitor and only {len(rows)} held-out rows "
            f"carry its logged predictions (need {MIN_LOGGED_ROWS}); it cannot be judged: keep it serving"
        )
    values = logged if spec.is_classifier else logged.astype(np.float64)
    y = rows[spec.label.name].to_numpy()
    champion = score_predictions(y.tolist(), Predictions(values), spec)
    mine = predict_frame(candidate.estimator, rows, spec, candidate.fitted.capabilities)
    challenger = score_predictions(y.tolist(), mine, spec)
    log.info("champion judged from its logged predictions %s", KV(version=current.version, rows=len(rows)))
    return Scores(champion, challenger, len(rows), "logged predictions", y, Predictions(values), mine)
