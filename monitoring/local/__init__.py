"""The embedded local CML workspace: API v2 server and client, job runs, builds, deployments, metrics.

Public surface (imported lazily so that engines importing one piece stay light):
``LocalWorkspace``, ``ensure_running``, ``shutdown``, ``reset``, ``read_info``, ``activate``,
``shell_exports``, ``FaultPlan`` (fault injection, see docs/faults.md).
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LocalWorkspace": "monitoring.local.workspace",
    "FaultPlan": "monitoring.local.faults",
    "ensure_running": "monitoring.local.daemon",
    "shutdown": "monitoring.local.daemon",
    "reset": "monitoring.local.daemon",
    "read_info": "monitoring.local.daemon",
    "engine_env_of": "monitoring.local.daemon",
    "activate": "monitoring.local.environment",
    "shell_exports": "monitoring.local.environment",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'monitoring.local' has no attribute {name!r}")
