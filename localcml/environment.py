"""Engine environments: the variables a CML engine has, ``activate`` for this process, shell exports."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from localcml.core import hosts

SHIM_DIR = Path(__file__).resolve().parent / "shim"
#: Directory holding the ``localcml`` package that runs the workspace (the shim imports from it);
#: never on an engine's import path (``python_path``).
PACKAGE_ROOT = Path(__file__).resolve().parent.parent
#: Host variables an engine process inherits (a CML engine has its own clean environment).
PASS_THROUGH = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "USER",
    "LOGNAME",
    "SYSTEMROOT",
    "VIRTUAL_ENV",
    "PYTHONHASHSEED",
)


def python_path(code_dir: str | Path) -> str:
    """``<shim>:<code dir>``: an engine imports its code, the shim and the runtime's installed packages.

    Never the folder the workspace runs from (a checkout holding ``examples/``, ``tests/``, ...): a
    module its build lacks must fail a replica as it does in CML. The workspace's own packages reach
    an engine where they are not installed through the shim's start-up hook, by name only.
    """
    return os.pathsep.join([str(SHIM_DIR), str(Path(code_dir).resolve())])


def engine_env(
    *,
    url: str,
    api_key: str,
    model_api_key: str,
    project_id: str,
    project_name: str,
    workspace_dir: str | Path,
    code_dir: str | Path,
    metrics_url: str,
    project: Mapping[str, str] | None = None,
    runtime: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The CML engine variables (and the local workspace's own) for code running in ``code_dir``.

    Args:
        url: the workspace base URL (``http://127.0.0.1:<port>``).
        api_key: the API v2 key (``CDSW_APIV2_KEY``).
        model_api_key: the model API key sent as Bearer to authenticated models.
        project_id, project_name: the project the engine belongs to.
        workspace_dir: W.
        code_dir: the project root (jobs) or a build snapshot (model replicas).
        metrics_url: the model metrics store's database URL.
        project: the project's engine variables (``PROJECT_OWNER``, its environment, ...).
        runtime: the runtime's ``ML_RUNTIME_*`` variables.

    Returns:
        name -> value; host variables such as PATH are not included (see ``process_env``).
    """
    host = url.split("://", 1)[-1].rstrip("/")
    workspace = Path(workspace_dir).resolve()
    return {
        **(runtime or {}),
        **(project or {}),
        "CDSW_PROJECT_ID": project_id,
        "CDSW_PROJECT": project_name,
        "CDSW_API_URL": f"{url.rstrip('/')}/api/v1",
        "CDSW_DOMAIN": host,
        "CDSW_APIV2_KEY": api_key,
        "CML_MONITOR_WORKSPACE": str(workspace),
        "CML_MONITOR_METRICS_URL": metrics_url,
        "CML_MONITOR_CLOCK_FILE": str(workspace / "clock.json"),
        "CML_MONITOR_MODEL_API_KEY": model_api_key,
        "MLFLOW_TRACKING_URI": f"{url.rstrip('/')}/mlflow",
        "MLFLOW_TRACKING_TOKEN": api_key,
        "PYTHONPATH": python_path(code_dir),
    }


def process_env(*layers: Mapping[str, str]) -> dict[str, str]:
    """Host pass-through variables, then each layer in order (later layers win)."""
    env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    for layer in layers:
        env.update({str(k): str(v) for k, v in layer.items()})
    return env


def activate(env: Mapping[str, str]) -> None:
    """Make ``import cdsw, cmlapi; cmlapi.default_client()`` work in this process.

    Puts each ``PYTHONPATH`` entry of ``env`` (the shim first) at the front of ``sys.path`` and
    copies ``env`` into ``os.environ``.
    """
    entries = [p for p in env.get("PYTHONPATH", str(SHIM_DIR)).split(os.pathsep) if p]
    for entry in reversed(entries):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)
    os.environ.update({k: str(v) for k, v in env.items()})
    importlib.invalidate_caches()
    hosts.install()  # modelservice.<domain> and monitoring.<domain> resolve here too


def shell_exports(env: Mapping[str, str]) -> str:
    """``export NAME='value'`` lines (safely quoted) for ``eval "$(cml-monitor local env)"``."""
    lines = []
    for name, value in sorted(env.items()):
        if not name.isidentifier():
            raise ValueError(f"environment variable name {name!r} is not a valid shell name")
        lines.append(f"export {name}='" + str(value).replace("'", "'\"'\"'") + "'\n")
    return "".join(lines)
