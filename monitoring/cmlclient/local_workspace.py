"""The one activation point of the embedded local CML workspace (``platform.kind: local``).

The library reaches CML only through ``cdsw`` and ``cmlapi``. Inside CML those are the
platform's own modules; locally this module starts (or reuses) the workspace package
``localcml`` and puts its shim first on ``sys.path``, so the same calls reach local, real
parts. No other module of the library imports ``localcml`` (an import-linter contract checks it).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType

from monitoring.config.pipeline import PipelineConfig
from monitoring.core.errors import ConfigError

#: Set in every local engine (job run, replica) and in an activated process.
WORKSPACE_ENV = "CML_MONITOR_WORKSPACE"
ENGINE_PREFIXES = ("CDSW_", "CML_MONITOR_")


def _workspace() -> ModuleType:
    try:
        import localcml
    except ImportError as exc:
        raise ConfigError(
            f"platform.kind is 'local' but the local CML workspace is not installed ({exc}): "
            "install the project (`make install`), or use platform.kind: cml inside CML"
        ) from None
    return localcml


def workspace_dir(cfg: PipelineConfig, project_root: str | Path) -> Path:
    """W: where the workspace of this project keeps its state, logs and secrets."""
    return Path(project_root).resolve() / cfg.platform.local.workspace_dir


def start(cfg: PipelineConfig, project_root: str | Path) -> dict[str, str]:
    """Start the project's workspace daemon, or reuse a live one; returns its engine environment."""
    root = Path(project_root).resolve()
    local = cfg.platform.local
    info = _workspace().ensure_running(
        workspace_dir(cfg, root),
        root,
        metrics_url=local.metrics_url,
        daemon_args=("--build-max-mb", f"{local.build_max_mb:g}"),
    )
    return dict(info.env)


def activate(cfg: PipelineConfig, project_root: str | Path) -> dict[str, str]:
    """Start or reuse the workspace and make ``import cdsw, cmlapi`` resolve to it in this process.

    Returns:
        The workspace's engine variables, as now in ``os.environ``.
    """
    if os.environ.get(WORKSPACE_ENV):  # already inside a local engine (job run, replica) or an activated shell
        return {k: v for k, v in os.environ.items() if k.startswith(ENGINE_PREFIXES)}
    env = start(cfg, project_root)
    _workspace().activate(env)
    return env


def stop(cfg: PipelineConfig, project_root: str | Path) -> None:
    """Stop the project's workspace daemon (its replicas and runs stop with it)."""
    _workspace().shutdown(workspace_dir(cfg, project_root))


def reset(cfg: PipelineConfig, project_root: str | Path) -> Path:
    """Stop the workspace and delete its directory; returns the directory removed."""
    path = workspace_dir(cfg, project_root)
    _workspace().reset(path)
    return path


def shell_exports(env: Mapping[str, str]) -> str:
    """``export NAME='value'`` lines for ``eval "$(cml-monitor local env)"``."""
    return _workspace().shell_exports(env)


def fast_forward(cfg: PipelineConfig, project_root: str | Path, until_ms: int, fires: int | None = None) -> dict:
    """Let the running workspace's scheduler skip idle time up to ``until_ms`` (or ``fires`` fires)."""
    return _workspace().fast_forward(workspace_dir(cfg, project_root), until_ms, fires)


def faults_command(cfg: PipelineConfig, project_root: str | Path, argv: Sequence[str]) -> int:
    """``cml-monitor faults ...``: edit the workspace's fault plan; returns the exit code."""
    from localcml import faults

    _workspace()
    return faults.main(["--dir", str(workspace_dir(cfg, project_root)), *argv])
