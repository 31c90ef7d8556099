"""A pipeline on an in-process local workspace: run the workflows directly, cycle by cycle."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from localcml.workspace import LocalWorkspace
from monitoring.app.wiring import build_context
from monitoring.config.pipeline import PipelineConfig, load_config
from monitoring.core.durations import to_ms
from monitoring.domain.records.keys import UUID_KEY
from monitoring.workflows.accuracy import compute_accuracy
from monitoring.workflows.bootstrap import bootstrap
from monitoring.workflows.context import Context, Outcome
from monitoring.workflows.evaluate import evaluate_thresholds
from monitoring.workflows.redeploy import redeploy
from monitoring.workflows.traffic import simulate_traffic
from tests.project import make_project

#: The examples at a few hundred replayed rows an hour (their own config otherwise).
SMALL_REPLAYS = {
    "churn": {"data": {"replay": {"source": {"rows": "3000:4200"}, "row_interval": "24s"}}},
    "housing": {"data": {"replay": {"source": {"shuffle_seed": 3, "rows": "0:4500"}}}},
    "credit": {"data": {"replay": {"source": {"shuffle_seed": 4, "rows": "0:1000"}}}},  # half: ~100 a month
}
#: Start of simulated time: a whole hour, so cycles and windows line up.
T0 = 1_790_000_000_000 - 1_790_000_000_000 % 3_600_000


def short_sleep(seconds: float) -> None:
    """Waits on real processes (builds, replicas) poll briefly; retries never wait long in tests."""
    time.sleep(min(seconds, 0.05))


@dataclass
class Pipeline:
    cfg: PipelineConfig
    ws: LocalWorkspace
    ctx: Context
    root: Path

    def at_cycle(self, cycle: int) -> int:
        now = T0 + (cycle - 1) * to_ms(self.cfg.scenario.cycle) + 60_000
        self.ws.set_now(now)
        return now

    def cycle(self, cycle: int, redeploy_too: bool = True) -> dict[str, Outcome]:
        """One pass of the chain, in-process, as CML would run it after the head job's schedule fires."""
        self.at_cycle(cycle)
        out = {
            "traffic": simulate_traffic(self.ctx),
            "accuracy": compute_accuracy(self.ctx),
            "evaluate": evaluate_thresholds(self.ctx),
        }
        if redeploy_too:
            out["redeploy"] = redeploy(self.ctx)
        return out

    def deployments(self) -> list[Any]:
        api = self.ctx.platform.api
        model = api.find_model(self.cfg.model.name)
        return [d for b in api.builds(model) for d in api.deployments(model, b.id)]

    def reopen(self) -> None:
        """A fresh context, its own connection to the state store (after a job process or the CLI wrote it)."""
        self.ctx = build_context(self.cfg, self.root, clock=self.ws.clock, sleep=short_sleep)

    def predictions(self) -> list[dict[str, Any]]:
        """The prediction records of the model's deployments, in the metrics store's order."""
        crns = {d.crn for d in self.deployments()}
        return [r for r in self.ws.metrics_store.read() if r[UUID_KEY] and r["modelDeploymentCrn"] in crns]


@contextlib.contextmanager
def running_pipeline(
    root: Path,
    patch: pytest.MonkeyPatch,
    overrides: dict | None = None,
    do_bootstrap: bool = True,
    example: str | None = None,
) -> Iterator[Pipeline]:
    """A project at ``root`` on a started workspace, this process one of its engines (``patch`` undoes that).

    ``example`` (``churn``) starts from ``examples/<example>/pipeline.yaml`` (``tests.project.make_project``).
    """
    root.mkdir()
    cfg = load_config(make_project(root, overrides, example))
    ws = LocalWorkspace(
        root / cfg.platform.local.workspace_dir,
        root,
        metrics_url=cfg.platform.local.metrics_url,
        busy_timeout=5.0,
        health_timeout=60.0,
    ).start()
    try:
        env = ws.engine_env()
        for key, value in env.items():
            patch.setenv(key, value)
        for entry in reversed(env["PYTHONPATH"].split(os.pathsep)):
            patch.syspath_prepend(entry)
        ws.set_now(T0)
        ctx = build_context(cfg, root, clock=ws.clock, sleep=short_sleep)
        pipeline = Pipeline(cfg, ws, ctx, root)
        if do_bootstrap:
            bootstrap(ctx)
        yield pipeline
    finally:
        ws.stop()
