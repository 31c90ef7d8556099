"""A throwaway project on a local CML workspace daemon, shared by the job and traffic cases.

The parent process owns the daemon (``start``/``stop``); each measured step runs in a child that
builds the pipeline's ``Context`` the way a job does (``build_context`` reuses the running daemon).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cmlbase.clock import WarpClock

HOUR_MS = 3_600_000
#: Start of simulated time (a whole hour, as in the integration tests): the model is deployed here.
T0 = 1_790_000_000_000 - 1_790_000_000_000 % HOUR_MS


@dataclass
class Project:
    """A project copy with its config; ``W`` is its workspace directory."""

    root: Path
    config: Path
    workspace: Path

    def clock(self) -> WarpClock:
        return WarpClock(self.workspace / "clock.json")

    def params(self) -> dict[str, str]:
        return {"root": str(self.root)}


def make(overrides: dict[str, Any], parent: Path | None = None) -> Project:
    """Copy the project (``tests/project.make_project``) into a fresh temp dir with ``overrides``."""
    from monitoring.config.pipeline import load_config
    from tests.project import make_project

    root = Path(tempfile.mkdtemp(prefix="cml-monitor-bench-", dir=parent))
    config = make_project(root, overrides)
    cfg = load_config(config)
    return Project(root, config, root / cfg.platform.local.workspace_dir)


def start(project: Project) -> None:
    """Start the project's workspace daemon (a child of this process) with the clock at ``T0``."""
    import localcml as local
    from monitoring.config.pipeline import load_config

    cfg = load_config(project.config)
    project.workspace.mkdir(parents=True, exist_ok=True)
    project.clock().set_now(T0 + 60_000)
    local.ensure_running(project.workspace, project.root, metrics_url=cfg.platform.local.metrics_url)


def stop(project: Project, remove: bool = True) -> None:
    """Stop the daemon (and its replicas); remove the project directory."""
    import localcml as local

    local.shutdown(project.workspace)
    if remove:
        shutil.rmtree(project.root, ignore_errors=True)


def context(root: str | Path):
    """The pipeline's Context as a job builds it (in a child step): config, platform, state store."""
    from monitoring.app.wiring import build_context
    from monitoring.config.pipeline import load_config

    root = Path(root)
    cfg = load_config(root / "config/pipeline.yaml")
    clock = WarpClock(root / cfg.platform.local.workspace_dir / "clock.json")
    return build_context(cfg, root, clock=clock)


def bootstrap(root: str | Path) -> dict[str, str]:
    """Train, build and deploy v1 (in a child step); returns the live deployment's CRNs and keys."""
    from monitoring.workflows.bootstrap import bootstrap as run_bootstrap

    ctx = context(root)
    outcome = run_bootstrap(ctx)
    model = ctx.require_model()
    live = ctx.require_live(model)
    build = ctx.platform.api.get_build(model, live.build_id)
    return {
        "summary": outcome.summary,
        "deployment_crn": live.crn,
        "model_crn": model.crn,
        "build_crn": build.crn,
    }


def bootstrap_step(params: dict) -> dict:
    """Child step: ``bootstrap`` for ``params["root"]``."""
    return bootstrap(params["root"])
