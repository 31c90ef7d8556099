"""What a run checks before it creates anything (state store, history marker, workspace): its trainer and its data.

A configuration error must write nothing. ``load_config`` checks the YAML itself; this checks what
the YAML points at, for the jobs about to run: the trainer imports and takes ``(frame, spec)``,
the files of each data source exist, an SQL source's URL variable is set and its database answers,
and the synthetic scenario is only asked for with its own spec.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.config.data import FileSource, MetricsStoreSource, SparkSource, SqlSource
from monitoring.config.pipeline import PipelineConfig
from monitoring.core.errors import ConfigError
from monitoring.domain.data.scenario import TelcoScenario
from monitoring.domain.data.sources.access import reach, source_problems
from monitoring.domain.training.estimators import load_trainer

#: The job that trains and deploys the first version (``cml-monitor bootstrap``, ``--train-only`` too).
BOOTSTRAP = "bootstrap"


@dataclass(frozen=True)
class Use:
    """A data source a job reads, named by its config key."""

    key: str
    source: Any
    """A file or SQL source; a synthetic source or None (the built-in scenario); the metrics store."""
    files_may_be_missing: bool = False
    """A feed whose files land later (ground truth): none yet is not an error."""


def uses(job: str, cfg: PipelineConfig) -> tuple[bool, list[Use]]:
    """Whether ``job`` trains a model (and so calls ``model.trainer``), and the data sources it reads."""
    data = cfg.data
    training = Use("data.training", data.training)
    if job == BOOTSTRAP:
        return True, [training]
    if job == "redeploy":
        return True, [Use("data.retraining.source", data.retraining.source)] + (
            [training] if data.retraining.include_training else []
        )
    if job == "simulate_traffic":
        return False, [Use("data.replay.source", data.replay.source) if data.replay else Use("data.replay", None)]
    if job == "ground_truth" and cfg.ground_truth is not None:
        return False, [Use("ground_truth.source", cfg.ground_truth.source, files_may_be_missing=True)]
    if job in ("check_deployment", "rollback"):  # a real row of the training data for the smoke call
        return False, [training]
    return False, []


def demo_jobs(cfg: PipelineConfig) -> list[str]:
    """What ``cml-monitor demo`` runs: bootstrap, then every job of ``jobs.graph``."""
    return [BOOTSTRAP, *(Path(spec.script).stem for spec in cfg.jobs.graph)]


def preflight(cfg: PipelineConfig, root: Path, jobs: Iterable[str], env: Mapping[str, str] | None = None) -> None:
    """Check what ``jobs`` will use, before anything is created; every config problem is listed at once.

    Args:
        cfg: the validated config.
        root: the project root (trainer modules and data paths are relative to it).
        jobs: the job names about to run (``bootstrap``, ``redeploy``, ...).
        env: environment for SQL ``url_env`` variables (default ``os.environ``).

    Raises:
        ConfigError: the trainer does not import or takes other arguments; no file matches a
            source's path; an SQL URL variable is unset or its SQLite file missing; the synthetic
            scenario for a spec that is not its own. Each problem names its config key.
        DataError: an SQL source's database cannot be reached.
    """
    env = os.environ if env is None else env
    trains, used = False, {}
    for job in jobs:
        job_trains, job_uses = uses(job, cfg)
        trains = trains or job_trains
        used.update({use.key: use for use in job_uses})
    problems = []
    trainer = cfg.model.trainer
    if trains and trainer:
        problems += _problems(lambda: load_trainer(trainer, root))
    for use in used.values():
        if isinstance(use.source, FileSource | SqlSource | SparkSource):
            problems += source_problems(use.source, root, use.key, env, files_may_be_missing=use.files_may_be_missing)
        elif not isinstance(use.source, MetricsStoreSource):  # the built-in scenario
            problems += _problems(lambda key=use.key: TelcoScenario.from_config(cfg, key))
    if problems:
        raise ConfigError(problems)
    for use in used.values():
        if isinstance(use.source, SqlSource):
            reach(use.source, root, use.key, env)


def _problems(check: Callable[[], object]) -> list[str]:
    try:
        check()
    except ConfigError as exc:
        return exc.problems
    return []
