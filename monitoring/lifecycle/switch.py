"""Whether trainings are logged to MLflow (``lifecycle.experiments``), and the digest that ties a run to its config."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

from monitoring.config.pipeline import PipelineConfig
from monitoring.core.errors import ConfigError

#: The variable CML (and the local workspace) sets in every engine: where ``mlflow`` logs.
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def experiments_on(cfg: PipelineConfig, environ: Mapping[str, str] = os.environ) -> bool:
    """Whether this run logs its trainings: ``on``, ``off``, or ``auto`` (when ``MLFLOW_TRACKING_URI`` is set).

    Raises:
        ConfigError: ``on`` (or ``builds: registry``) with no tracking URI: MLflow would fall back to a
            store in the working directory, which nobody reads.
    """
    mode = cfg.lifecycle.experiments
    if mode == "off":
        return False
    if environ.get(TRACKING_URI_ENV):
        return True
    if mode == "on" or cfg.lifecycle.builds == "registry":
        key = "lifecycle.experiments: on" if mode == "on" else "lifecycle.builds: registry"
        raise ConfigError(
            f"{key} needs an MLflow tracking server, but {TRACKING_URI_ENV} is not set: run inside CML "
            "(the platform sets it) or on the local workspace (platform.kind: local), or set it"
        )
    return False


def config_digest(cfg: PipelineConfig) -> str:
    """A short digest of the validated config (it holds no secrets: those come from the environment)."""
    return hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:16]
