"""Training data and candidates: the configured sources, time splits, the spec's trainer, saved versions."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.config.data import MetricsStoreSource, SyntheticSource
from monitoring.config.metric_registry import headline_metric
from monitoring.config.model_spec import ModelConfig
from monitoring.config.retraining import StrategyConfig
from monitoring.core.errors import DataError
from monitoring.core.logs import KV
from monitoring.domain.data.requests import requests_of
from monitoring.domain.data.scenario import TelcoScenario
from monitoring.domain.data.sources import TIME_COLUMN, load_dataset
from monitoring.domain.data.sources.schema import conform
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.records.columns import Columns
from monitoring.domain.training.artifacts import make_metadata, save_artifact
from monitoring.domain.training.estimators import Fitted, fit
from monitoring.domain.training.predictions import Predictions, predict_frame, predicts_most_probable, score_predictions
from monitoring.domain.training.strategies import TrainingRows, reads_whole_history, select_rows
from monitoring.workflows.context import Context, Training
from monitoring.workflows.references import fit_references

log = logging.getLogger(__name__)

#: Columns the metrics store's rows carry beside the features and label: what the serving model logged.
LOGGED_PREDICTION = "prediction"
LOGGED_DEPLOYMENT = "deployment_crn"


@dataclass
class Candidate:
    """A trained model and the rows it was trained and held out on."""

    fitted: Fitted
    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_metrics: dict[str, Any]
    holdout_predictions: Predictions
    """The challenger's predictions of ``holdout`` before any refit (what the gate judges, and what the
    version's references are scored on: a refit has seen these rows)."""
    predict_is_argmax: bool = False
    rows: TrainingRows | None = None
    """The strategy's selection (``train`` is what the estimator was fitted on)."""
    refitted: bool = False
    """Refitted on every selected row after the gate, the held-out ones included."""

    @property
    def estimator(self) -> Any:
        return self.fitted.estimator


def initial_frame(ctx: Training) -> pd.DataFrame:
    """The initial training data (``data.training``): the synthetic scenario or a data set, checked.

    Raises:
        ConfigError: the synthetic scenario for a spec that is not its own; an SQL URL variable unset.
        DataError: the data cannot be read or does not match the spec.
    """
    cfg = ctx.cfg
    source = cfg.data.training
    if isinstance(source, SyntheticSource):
        scenario = TelcoScenario.from_config(cfg, "data.training")
        frame = scenario.generate(source.rows or cfg.scenario.training_rows, ctx.rng(0, 0), drift_level=0.0)
        return conform(frame, cfg.model, "data.training (synthetic)")
    return load_dataset(source, cfg.model, ctx.project_root, "data.training")


def labelled_frame(ctx: Context, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Inputs tracked at prediction time joined with their delayed ground truth, for every deployment
    of the model in ``[start_ms, end_ms)``: one row per labelled prediction, in time order.

    Beside the spec's columns each row keeps what the serving model logged: its ``prediction``
    (a class value or a number) and ``deployment_crn``, so a champion can be judged by its own logs.
    """
    spec = ctx.cfg.model
    parts = []
    for dep in ctx.store.deployments(spec.name):
        for _, _, columns in ctx.read_columns(dep.deployment_crn, start_ms, end_ms, end_ms - start_ms or 1):
            parts.append(_with_logged_predictions(columns, columns.training_frame(spec)))
    if not parts:
        return pd.DataFrame(columns=[*spec.feature_names, spec.label.name, TIME_COLUMN])
    return pd.concat(parts, ignore_index=True).sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)


def _with_logged_predictions(columns: Columns, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` (``columns.training_frame``) with the logged prediction and deployment of each row.

    ``training_frame`` keeps the labelled rows with a prediction and readable features; when its
    rows are not exactly those, the logs are left out (a foreign champion then cannot be judged).
    """
    kept = np.isfinite(columns.label) & ~np.isnan(columns.prediction)
    if columns.unreadable is not None:
        kept &= ~columns.unreadable
    if int(kept.sum()) != len(frame) or not np.array_equal(columns.start_ms[kept], frame[TIME_COLUMN].to_numpy()):
        log.warning("training rows do not line up with their records: logged predictions left out")
        return frame
    predictions = columns.label_values(columns.prediction[kept])
    return frame.assign(
        **{
            LOGGED_PREDICTION: pd.Series(predictions, dtype=predictions.dtype),
            LOGGED_DEPLOYMENT: pd.Series(columns.deployment_crn[kept], dtype=object),
        }
    )


def recent_frame(ctx: Context, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Recent labelled rows for retraining (``data.retraining.source``) in ``[start_ms, end_ms)``.

    A data set without a ``time_column`` is read whole (it has no times to limit).

    Raises:
        ConfigError: an SQL URL variable unset.
        DataError: the data cannot be read or does not match the spec.
    """
    source = ctx.cfg.data.retraining.source
    if isinstance(source, MetricsStoreSource):
        return labelled_frame(ctx, start_ms, end_ms)
    window = (start_ms, end_ms) if source.time_column else None
    return load_dataset(source, ctx.cfg.model, ctx.project_root, "data.retraining.source", window_ms=window)


def training_rows(ctx: Context, recent: pd.DataFrame, now_ms: int) -> TrainingRows:
    """The rows ``retraining.strategy`` trains and holds out on, given the lookback's labelled rows.

    The newest ``retraining.holdout_fraction`` of ``recent`` is held out whatever the strategy;
    the expanding strategies read every labelled row since the first deployment and
    ``data.training`` besides.

    Raises:
        ConfigError: an SQL URL variable unset.
        DataError: data that cannot be read, or too few rows to split.
    """
    cfg = ctx.cfg
    strategy = cfg.retraining.strategy
    _, holdout = split_by_time(recent, cfg.retraining.holdout_fraction)
    if reads_whole_history(strategy):
        labelled, initial = recent_frame(ctx, 0, now_ms), initial_frame(ctx)
    else:
        labelled = recent
        initial = initial_frame(ctx) if cfg.data.retraining.include_training else None
    times = pd.to_numeric(labelled[TIME_COLUMN], errors="coerce") if TIME_COLUMN in labelled.columns else None
    return select_rows(
        strategy, labelled, len(holdout), initial=initial, now_ms=now_ms, times=None if times is None else times.values
    )


def split_by_time(frame: pd.DataFrame, holdout_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Older rows train, the newest ``holdout_fraction`` is held out (no look-ahead)."""
    cut = int(round(len(frame) * (1 - holdout_fraction)))
    return frame.iloc[:cut], frame.iloc[cut:]


def fit_candidate(ctx: Training, frame: pd.DataFrame, extra_training: pd.DataFrame | None = None) -> Candidate:
    """Train on the older rows of ``frame`` (plus ``extra_training``), score on its newest ones.

    Raises:
        ConfigError: the trainer cannot be loaded, fails or returns something unusable.
        DataError: too few rows, one class only, or no held-out rows.
    """
    cfg = ctx.cfg
    train, holdout = split_by_time(frame, cfg.retraining.holdout_fraction)
    if holdout.empty or train.empty:
        raise DataError(f"{len(frame)} labelled rows cannot be split into training and held-out rows")
    rows = select_rows(StrategyConfig(), frame, len(holdout), initial=extra_training, now_ms=0)
    return candidate_from_rows(ctx, rows)


def first_candidate(ctx: Training) -> Candidate:
    """The first model: trained on ``data.training`` less its newest rows, scored on those, then
    (``retraining.refit``) refitted on all of it."""
    candidate = fit_candidate(ctx, initial_frame(ctx))
    return refit_candidate(ctx, candidate) if ctx.cfg.retraining.refit else candidate


def candidate_from_rows(ctx: Training, rows: TrainingRows) -> Candidate:
    """Train on the strategy's training rows (with their weights), score on its held-out rows."""
    candidate = train_candidate(
        ctx.cfg.model, rows.train, rows.holdout, ctx.cfg.scenario.seed, ctx.project_root, rows.train_weights
    )
    candidate.rows = rows
    return candidate


def refit_candidate(ctx: Training, candidate: Candidate) -> Candidate:
    """The candidate refitted on every selected row, the held-out ones included (``retraining.refit``).

    Its held-out metrics stay those of the fit before (the held-out rows are no longer unseen);
    whether ``predict`` gives the most probable class is checked again on the held-out rows.
    """
    if candidate.rows is None:
        return candidate
    spec = ctx.cfg.model
    frame, weights = candidate.rows.everything()
    fitted = fit(frame, spec, seed=ctx.cfg.scenario.seed, project_root=ctx.project_root, sample_weight=weights)
    predictions = predict_frame(fitted.estimator, candidate.holdout, spec, fitted.capabilities)
    argmax = predicts_most_probable(predictions, spec, fitted.capabilities)
    log.info("refitted the candidate on every selected row %s", KV(rows=len(frame), predict_is_argmax=argmax))
    return replace(candidate, fitted=fitted, train=frame, predict_is_argmax=argmax, refitted=True)


def train_candidate(
    spec: ModelConfig,
    train: pd.DataFrame,
    holdout: pd.DataFrame,
    seed: int,
    project_root: Path,
    sample_weight: np.ndarray | None = None,
) -> Candidate:
    """Train the spec's model on ``train`` and score it on ``holdout``, where its ``predict`` is also
    checked against the most probable class (``Candidate.predict_is_argmax``: serving's one call).

    Raises:
        ConfigError: the trainer cannot be loaded, fails or returns something unusable.
        DataError: too few rows or one class only.
    """
    fitted = fit(train, spec, seed=seed, project_root=project_root, sample_weight=sample_weight)
    predictions = predict_frame(fitted.estimator, holdout, spec, fitted.capabilities)  # predict and predict_proba
    metrics = score_predictions(holdout[spec.label.name].tolist(), predictions, spec)
    argmax = predicts_most_probable(predictions, spec, fitted.capabilities)
    log.info(
        "trained a candidate %s",
        KV(
            trainer=fitted.trainer,
            rows=len(train),
            holdout=len(holdout),
            weighted=sample_weight is not None,
            **_rounded(metrics),
            predict_is_argmax=argmax,
        ),
    )
    return Candidate(fitted, train, holdout, metrics, predictions, predict_is_argmax=argmax)


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}


def save_candidate(ctx: Training, candidate: Candidate, parent_version: str | None, label: str) -> tuple[str, str]:
    """Save a candidate as the next version; returns ``(version, artifact path relative to the project)``."""
    cfg = ctx.cfg
    spec = cfg.model
    times = candidate.train.get(TIME_COLUMN)
    window = None
    if times is not None and len(times) and times.notna().all():
        window = {"start_ms": int(times.min()), "end_ms": int(times.max())}
    metadata = make_metadata(
        spec=spec,
        trained_at_ms=ctx.now_ms(),
        n_train=len(candidate.train),
        holdout=candidate.holdout_metrics,
        reference=ReferenceStats.fit(candidate.train, spec.feature_names, kinds=spec.kinds).to_dict(),
        trainer=candidate.fitted.trainer,
        metric=headline_metric(spec.task, cfg.retraining.metric),
        training_window=window,
        parent_version=parent_version,
        predict_is_argmax=candidate.predict_is_argmax,
        reason=label,
        training_rows=None if candidate.rows is None else candidate.rows.describe(candidate.refitted),
        **fit_references(
            cfg.slices,
            candidate.holdout_predictions,
            candidate.train,
            candidate.holdout,
            spec,
            cfg.scenario.seed,
        ),
    )
    path = Path(save_artifact(candidate.estimator, ctx.artifacts_dir, spec.name, metadata))
    rel = path.resolve().relative_to(ctx.project_root.resolve()).as_posix()
    return path.name, rel


def sample_request(ctx: Context, frame: pd.DataFrame) -> dict[str, Any]:
    """A real feature row to use for the smoke call."""
    return requests_of(frame.iloc[:1], ctx.cfg.model)[0]


def headline(ctx: Context, metrics: dict[str, Any]) -> tuple[str, float | None]:
    """The metric a model is judged on and its value in ``metrics``."""
    name = headline_metric(ctx.cfg.model.task, ctx.cfg.retraining.metric)
    return name, metrics.get(name)
