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

from cmlbase.clock import Clock, clock_from_env
from monitoring.cmlclient import Platform, connect
from monitoring.config.pipeline import CONFIG_ENV, DEFAULT_CONFIG, PipelineConfig, load_config
from monitoring.state.health import StoreOpening
from monitoring.state.store import StateStore
from monitoring.workflows.context import Context, OfflineContext, Training, history_on_platform
from monitoring.workflows.recovery.command import Recovery


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
    store: StateStore | None = None,
) -> Context:
    """Wire config, platform and state store for one job run.

    Args:
        cfg: the validated pipeline config.
        project_root: the project directory (relative config paths resolve against it).
        platform: a ready platform (tests, rehearsals); default ``connect(cfg, root, clock, sleep)``.
        clock: the clock for a platform built here; default the environment's (wall or warp).
        sleep: the sleep for retries and polls of a platform built here.
        store: a store the caller opened (a recovery command's restored or rebuilt one); default:
            the configured store, opened with a job's checks.

    Raises:
        ConfigError: the platform cannot be reached from here (outside CML, no local workspace).
        StoreError: the state store is damaged, foreign, or missing while history exists (checked
            before the platform is reached, where it can be).
        ConfigChangedError: the model name, ``windows.length``, the metrics store or ``state.url``
            changed after history exists.
    """
    root = Path(project_root).resolve()
    if store is not None:
        return Context(cfg, platform or connect(cfg, root, clock=clock, sleep=sleep), store, root)
    opening = StoreOpening(cfg, root)
    platform = platform or connect(cfg, root, clock=clock, sleep=sleep)
    store = opening.open(platform.api.project_id, lambda: history_on_platform(platform, cfg))
    return Context(cfg, platform, store, root)


def recovery(cfg: PipelineConfig, project_root: str | os.PathLike, *, platform: Platform | None = None) -> Recovery:
    """Wire a ``cml-monitor state`` command: the platform now, a ``Context`` (``build_context``) around
    whatever store the command opens itself.

    Raises:
        ConfigError: the platform cannot be reached from here (outside CML, no local workspace).
    """
    root = Path(project_root).resolve()
    platform = platform or connect(cfg, root)
    return Recovery(cfg, root, platform, lambda store: build_context(cfg, root, platform=platform, store=store))


def offline_context(cfg: PipelineConfig, project_root: str | os.PathLike) -> OfflineContext:
    """Wire a run that needs neither platform nor state store (training only): nothing is started or created."""
    return OfflineContext(cfg, Path(project_root).resolve(), clock_from_env())


#: What ``run_job`` calls to wire a run: ``(cfg, project_root) -> Context`` (``OfflineContext`` for training only).
Wiring = Callable[[PipelineConfig, Path], Training]
