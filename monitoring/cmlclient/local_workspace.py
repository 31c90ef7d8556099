"""The one activation point of the embedded local CML workspace (``platform.kind: local``).

The library reaches CML only through ``cdsw`` and ``cmlapi``. Inside CML those are the
platform's own modules; locally this module starts (or reuses) the workspace package
``localcml`` and puts its shim first on ``sys.path``, so the same calls reach local, real
parts. No other module of the library imports ``localcml`` (an import-linter contract checks it).

The workspace raises its own errors (``localcml.core.errors``: it imports nothing of the library);
``translated`` turns each into the library's error of the same name, message and exit code, here
and wherever the library calls the workspace's ``cdsw`` directly.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

from monitoring.config.pipeline import PipelineConfig
from monitoring.core.errors import ConfigError, MonitoringError, NoSpaceError, PlatformError

#: Set in every local engine (job run, replica) and in an activated process.
WORKSPACE_ENV = "CML_MONITOR_WORKSPACE"
ENGINE_PREFIXES = ("CDSW_", "CML_MONITOR_")


def library_error(exc: BaseException) -> MonitoringError | None:
    """The library's error for one the workspace raised (same name, message, exit code); None for any other."""
    errors = sys.modules.get("localcml.core.errors")  # loaded wherever workspace code ran in this process
    if errors is None or not isinstance(exc, errors.WorkspaceError):
        return None
    if isinstance(exc, errors.ConfigError):
        return ConfigError(exc.problems)
    if isinstance(exc, errors.NoSpaceError):
        return NoSpaceError(str(exc), exc.where)
    if isinstance(exc, errors.PlatformError):
        return PlatformError(str(exc))
    return MonitoringError(str(exc))


@contextmanager
def translated() -> Iterator[None]:
    """Around a call into the workspace: its errors leave as the library's, chained to the original.

    Usable as a decorator too. Inside CML nothing of the workspace is loaded, and every error passes unchanged.
    """
    try:
        yield
    except Exception as exc:
        mapped = library_error(exc)
        if mapped is None:
            raise
        raise mapped from exc


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


@translated()
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


@translated()
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


@translated()
def stop(cfg: PipelineConfig, project_root: str | Path) -> None:
    """Stop the project's workspace daemon (its replicas and runs stop with it)."""
    _workspace().shutdown(workspace_dir(cfg, project_root))


@translated()
def reset(cfg: PipelineConfig, project_root: str | Path) -> Path:
    """Stop the workspace and delete its directory; returns the directory removed."""
    path = workspace_dir(cfg, project_root)
    _workspace().reset(path)
    return path


def shell_exports(env: Mapping[str, str]) -> str:
    """``export NAME='value'`` lines for ``eval "$(cml-monitor local env)"``."""
    return _workspace().shell_exports(env)


@translated()
def fast_forward(cfg: PipelineConfig, project_root: str | Path, until_ms: int, fires: int | None = None) -> dict:
    """Let the running workspace's scheduler skip idle time up to ``until_ms`` (or ``fires`` fires)."""
    return _workspace().fast_forward(workspace_dir(cfg, project_root), until_ms, fires)


@translated()
def faults_command(cfg: PipelineConfig, project_root: str | Path, argv: Sequence[str]) -> int:
    """``cml-monitor faults ...``: edit the workspace's fault plan; returns the exit code."""
    from localcml import faults

    _workspace()
    return faults.main(["--dir", str(workspace_dir(cfg, project_root)), *argv])
