"""What every workflow receives, and what it returns for the job's verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monitoring.cmlclient import Platform
from monitoring.cmlclient.refs import DeploymentRef, ModelRef
from monitoring.core.config import PipelineConfig
from monitoring.core.errors import EXIT_OK, DataError
from monitoring.state.store import StateStore

#: Deployment environment variable naming the artifact directory the serving function loads.
ARTIFACT_ENV = "CML_MONITOR_MODEL_ARTIFACT"


@dataclass
class Context:
    cfg: PipelineConfig
    platform: Platform
    store: StateStore
    project_root: Path

    @property
    def artifacts_dir(self) -> Path:
        return self.project_root / self.cfg.state.artifacts_dir

    def rng(self, *salt: int) -> np.random.Generator:
        """A generator seeded from the scenario seed and the given salt (e.g. the cycle index)."""
        return np.random.default_rng([self.cfg.scenario.seed, *[int(s) for s in salt]])

    def require_model(self) -> ModelRef:
        model = self.platform.api.find_model(self.cfg.model.name)
        if model is None:
            raise DataError(
                f"model {self.cfg.model.name!r} does not exist in project "
                f"{self.platform.api.project_id}: run `cml-monitor bootstrap` first"
            )
        return model

    def require_live(self, model: ModelRef) -> DeploymentRef:
        live = self.platform.api.live_deployment(model)
        if live is None:
            raise DataError(
                f"model {model.name!r} has no deployment with status 'deployed': "
                "deploy it (`cml-monitor bootstrap`) or restore the last good one"
            )
        return live


def version_of(deployment: DeploymentRef) -> str:
    """The artifact version a deployment serves (last part of its artifact path), or ``?``."""
    path = deployment.environment.get(ARTIFACT_ENV, "")
    return path.rstrip("/").rsplit("/", 1)[-1] if path else "?"


@dataclass
class Outcome:
    """A workflow's result: the job turns it into the VERDICT line and the exit code."""

    status: str
    summary: str
    action: str = "none"
    fields: dict[str, Any] = field(default_factory=dict)
    exit_code: int = EXIT_OK
