"""The one composition point: a job's ``Context`` from config and project root.

Jobs, the CLI, the demo, the benchmarks and the tests all build their context here. The
platform, the clock and the sleep function are injectable, so a test or a rehearsal can hand
in its own (a warped clock, a platform with a spying endpoint, a sleep that never waits).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from monitoring.cmlclient import Platform, connect
from monitoring.core.clock import Clock
from monitoring.core.config import CONFIG_ENV, DEFAULT_CONFIG, PipelineConfig, load_config
from monitoring.state.store import StateStore
from monitoring.workflows.context import Context


def config_path(config: str | os.PathLike | None, project_root: str | os.PathLike) -> Path:
    """The config file a job uses: ``--config``, else ``$CML_MONITOR_CONFIG``, else the project default.

    A relative ``$CML_MONITOR_CONFIG`` is relative to the project root (``graph apply`` sets it so
    in each job's environment); a relative ``--config`` to the working directory.
    """
    if config:
        return Path(config)
    return Path(project_root) / (os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)


def load_project_config(config: str | os.PathLike | None, project_root: str | os.PathLike) -> PipelineConfig:
    """Load and validate the config ``config_path`` names.

    Raises:
        ConfigError: the file is missing, not YAML, or invalid (every problem listed).
    """
    return load_config(config_path(config, project_root))


def build_context(
    cfg: PipelineConfig,
    project_root: str | os.PathLike,
    *,
    platform: Platform | None = None,
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Context:
    """Wire config, platform and state store for one job run.

    Args:
        cfg: the validated pipeline config.
        project_root: the project directory (relative config paths resolve against it).
        platform: a ready platform (tests, rehearsals); default ``connect(cfg, root, clock, sleep)``.
        clock: the clock for a platform built here; default the environment's (wall or warp).
        sleep: the sleep for retries and polls of a platform built here.

    Raises:
        ConfigError: the platform cannot be reached from here (outside CML, no local workspace).
    """
    root = Path(project_root).resolve()
    platform = platform or connect(cfg, root, clock=clock, sleep=sleep)
    return Context(cfg, platform, StateStore(cfg.state.url, base_dir=root), root)


#: What ``run_job`` calls to wire a run: ``(cfg, project_root) -> Context``.
Wiring = Callable[[PipelineConfig, Path], Context]
