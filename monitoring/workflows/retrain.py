"""Training data and candidates: labelled traffic from the metrics store, time splits, saved versions."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from monitoring.domain.drift import ReferenceStats
from monitoring.domain.training import make_metadata, save_artifact, score, train_model
from monitoring.workflows.context import Context

log = logging.getLogger(__name__)

TIME_COLUMN = "start_ms"


@dataclass
class Candidate:
    pipeline: Any
    train: pd.DataFrame
    holdout: pd.DataFrame
    holdout_metrics: dict[str, float]


def labelled_frame(ctx: Context, start_ms: int, end_ms: int) -> pd.DataFrame:
    """Inputs tracked at prediction time joined with their delayed ground truth, for every deployment
    of the model in ``[start_ms, end_ms)``: one row per labelled prediction with finite features."""
    cfg = ctx.cfg
    parts = []
    for dep in ctx.store.deployments(cfg.model.name):
        for _, _, columns in ctx.read_columns(dep.deployment_crn, start_ms, end_ms, end_ms - start_ms or 1):
            parts.append(columns.training_frame(cfg.model.label.name))
    if not parts:
        return pd.DataFrame(columns=[*cfg.model.feature_names, cfg.model.label.name, TIME_COLUMN])
    return pd.concat(parts, ignore_index=True).sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)


def split_by_time(frame: pd.DataFrame, holdout_fraction: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Older rows train, the newest ``holdout_fraction`` is held out (no look-ahead)."""
    cut = int(round(len(frame) * (1 - holdout_fraction)))
    return frame.iloc[:cut], frame.iloc[cut:]


def fit_candidate(ctx: Context, frame: pd.DataFrame) -> Candidate:
    cfg = ctx.cfg
    train, holdout = split_by_time(frame, cfg.retraining.holdout_fraction)
    pipeline = train_model(train, list(cfg.model.feature_names), cfg.model.label.name, seed=cfg.scenario.seed)
    metrics = score(pipeline, holdout, list(cfg.model.feature_names), cfg.model.label.name)
    return Candidate(pipeline, train, holdout, metrics)


def save_candidate(ctx: Context, candidate: Candidate, parent_version: str | None, label: str) -> tuple[str, str]:
    """Save a candidate as the next version; returns ``(version, artifact path relative to the project)``."""
    cfg = ctx.cfg
    features = list(cfg.model.feature_names)
    times = candidate.train.get(TIME_COLUMN)
    window = {"start_ms": int(times.min()), "end_ms": int(times.max())} if times is not None and len(times) else None
    metadata = make_metadata(
        features=features,
        label=cfg.model.label.name,
        classes=cfg.model.classes,
        trained_at_ms=ctx.platform.clock.now_ms(),
        n_train=len(candidate.train),
        holdout=candidate.holdout_metrics,
        reference=ReferenceStats.fit(candidate.train, features).to_dict(),
        training_window=window,
        parent_version=parent_version,
        reason=label,
    )
    path = Path(save_artifact(candidate.pipeline, ctx.artifacts_dir, cfg.model.name, metadata))
    rel = path.resolve().relative_to(ctx.project_root.resolve()).as_posix()
    return path.name, rel


def sample_request(ctx: Context, frame: pd.DataFrame) -> dict[str, float]:
    """A real feature row to use for the smoke call."""
    row = frame.iloc[0]
    return {name: float(row[name]) for name in ctx.cfg.model.feature_names}
