"""The only module that imports ``cdsw`` and ``cmlapi``, lazily.

Inside CML they are the platform's own modules. Locally, ``localcml.activate`` puts
the embedded workspace's shim (importable ``cdsw`` and ``cmlapi``) on ``sys.path`` first, so
the same code path runs against the local workspace.
"""

from __future__ import annotations

import importlib
import os
import re
from types import ModuleType

from monitoring.core.errors import ConfigError

_HINT = (
    "run inside a CML project (jobs, sessions and models have it), or use the embedded local "
    'workspace: set platform.kind: local, or `eval "$(cml-monitor local env)"` first'
)


def _import(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ConfigError(f"cannot import {name!r} ({exc}): {_HINT}") from None


def sdk() -> ModuleType:
    """The ``cdsw`` model-metrics SDK module."""
    return _import("cdsw")


def api_module() -> ModuleType:
    """The ``cmlapi`` package (client, model classes, ``rest.ApiException``)."""
    return _import("cmlapi")


def api_client(url: str | None = None, api_key: str | None = None):
    """``cmlapi.default_client()``: engine credentials inside CML, or an explicit URL and key.

    Raises:
        ConfigError: outside CML with no URL/key (the message names the variables to set).
    """
    cmlapi = api_module()
    try:
        if url or api_key:
            return cmlapi.default_client(url=url, cml_api_key=api_key)
        return cmlapi.default_client()
    except ValueError as exc:
        env_url = re.sub(r"/api/v1/?$", "", os.environ.get("CDSW_API_URL", ""))
        env_key = os.environ.get("CDSW_APIV2_KEY")
        if not (url or api_key) and env_url and env_key:  # the explicit form Cloudera's examples use
            return cmlapi.default_client(url=env_url, cml_api_key=env_key)
        raise ConfigError(
            f"cmlapi.default_client() failed: {exc}; set CDSW_API_URL (the workbench URL) and "
            "CDSW_APIV2_KEY (User Settings > API Keys > API v2 key)"
        ) from None


def api_exception_type() -> type[Exception]:
    """``cmlapi.rest.ApiException`` (has ``status``, ``reason`` and ``body``)."""
    return _import("cmlapi.rest").ApiException
