"""What every workflow receives, and what it returns for the job's verdict."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmlbase.clock import Clock
from monitoring.cmlclient import Platform
from monitoring.cmlclient.refs import DeploymentRef, ModelRef
from monitoring.config.pipeline import PipelineConfig
from monitoring.core.errors import EXIT_OK, DataError
from monitoring.core.logs import KV
from monitoring.domain.records.columns import Columns
from monitoring.domain.records.decode import records_to_columns
from monitoring.state.store import StateStore

log = logging.getLogger(__name__)

#: Deployment environment variable naming the artifact directory the serving function loads.
ARTIFACT_ENV = "CML_MONITOR_MODEL_ARTIFACT"


class _Project:
    """What every run has: the config and the project directory (and what follows from them)."""

    cfg: PipelineConfig
    project_root: Path

    @property
    def artifacts_dir(self) -> Path:
        return self.project_root / self.cfg.state.artifacts_dir

    def rng(self, *salt: int) -> np.random.Generator:
        """A generator seeded from the scenario seed and the given salt (e.g. the cycle index)."""
        return np.random.default_rng([self.cfg.scenario.seed, *[int(s) for s in salt]])


@dataclass
class OfflineContext(_Project):
    """A run that needs neither platform nor state store: training only (``bootstrap --train-only``)."""

    cfg: PipelineConfig
    project_root: Path
    clock: Clock

    def now_ms(self) -> int:
        return self.clock.now_ms()


@dataclass
class Context(_Project):
    """A job run: its config, the platform, the state store and the project directory."""

    cfg: PipelineConfig
    platform: Platform
    store: StateStore
    project_root: Path

    def now_ms(self) -> int:
        return self.platform.clock.now_ms()

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

    def record_discovered(self, model: ModelRef, live: DeploymentRef) -> None:
        """Record a serving deployment the state store does not know yet (CRNs change on redeploy,
        and a deployment may have been made by other means).

        It counts as serving since its ``created_at``, not since now (or the predictions it served
        before a job noticed it would never be read), and never later than now.
        """
        if live.crn in {d.deployment_crn for d in self.store.deployments(model.name)}:
            return
        log.info("live deployment not yet recorded, recording it %s", KV(deployment=live.id))
        now = self.platform.clock.now_ms()
        since = now if live.created_ms is None else min(live.created_ms, now)
        self.store.record_deployment(
            model.name, live.crn, model.crn, live.build_id, version_of(live), since, "discovered"
        )

    def live_recorded(self) -> tuple[ModelRef, DeploymentRef]:
        """The model and its live deployment, re-resolved (CRNs change on redeploy) and recorded.

        Raises:
            DataError: the model does not exist or nothing serves it.
        """
        model = self.require_model()
        live = self.require_live(model)
        self.record_discovered(model, live)
        return model, live

    def read_columns(
        self, deployment_crn: str, start_ms: int, end_ms: int, chunk_ms: int
    ) -> Iterator[tuple[int, int, Columns]]:
        """A deployment's tracked predictions in ``[start_ms, end_ms)`` as columns, one chunk at a time.

        Yields:
            ``(chunk_start, chunk_end_exclusive, columns)`` read as the model spec says, with the configured keys.
        """
        windows = self.cfg.windows
        for lo, hi, records in self.platform.metrics.read_chunks(deployment_crn, start_ms, end_ms, chunk_ms):
            yield (
                lo,
                hi,
                records_to_columns(
                    records,
                    self.cfg.model,
                    prediction_key=windows.prediction_key,
                    label_key=windows.label_key,
                    features_key=windows.features_key,
                    probability_key=windows.probability_key,
                    probabilities_key=windows.probabilities_key,
                ),
            )


#: What training needs (config, project root, a clock): a job's ``Context`` or an ``OfflineContext``.
Training = Context | OfflineContext


def version_of(deployment: DeploymentRef) -> str:
    """The artifact version a deployment serves (last part of its artifact path), or ``?``."""
    path = deployment.environment.get(ARTIFACT_ENV, "")
    return path.rstrip("/").rsplit("/", 1)[-1] if path else "?"


def history_on_platform(platform: Platform, cfg: PipelineConfig) -> str | None:
    """What shows, on the platform, that this model has history: a live deployment cml-monitor made.

    Asked only when a job finds no state store (a first run, or a lost store). A deployment made by
    other means (no artifact of ours in its environment) is not history: monitoring it starts fresh.
    """
    model = platform.api.find_model(cfg.model.name)
    live = platform.api.live_deployment(model) if model is not None else None
    if live is None or ARTIFACT_ENV not in live.environment:
        return None
    return f"model {cfg.model.name!r} serves {version_of(live)} (deployment {live.id}), deployed by cml-monitor"


@dataclass
class Outcome:
    """A workflow's result: the job turns it into the VERDICT line and the exit code."""

    status: str
    summary: str
    action: str = "none"
    fields: dict[str, Any] = field(default_factory=dict)
    exit_code: int = EXIT_OK
