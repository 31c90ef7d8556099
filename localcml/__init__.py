"""The embedded local CML workspace: API v2 server and client, job runs, builds, deployments, metrics.

Public surface (imported lazily so that engines importing one piece stay light):
``LocalWorkspace``, ``ensure_running``, ``shutdown``, ``reset``, ``read_info``, ``activate``,
``shell_exports``, ``FaultPlan`` (fault injection, see docs/faults.md), ``fast_forward`` and
``scheduler_status`` (rehearsing schedules faster than real time).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LocalWorkspace": "localcml.workspace",
    "FaultPlan": "localcml.faults",
    "ensure_running": "localcml.daemon",
    "shutdown": "localcml.daemon",
    "reset": "localcml.daemon",
    "read_info": "localcml.daemon",
    "engine_env_of": "localcml.daemon",
    "activate": "localcml.environment",
    "shell_exports": "localcml.environment",
    "fast_forward": "localcml.rehearsal",
    "scheduler_status": "localcml.rehearsal",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'localcml' has no attribute {name!r}")
