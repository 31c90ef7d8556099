"""The local workspace as a standalone daemon, and helpers to find, start, stop and reset it.

``python -m localcml.daemon --dir W --project-root R`` serves until SIGTERM/SIGINT.
``ensure_running(W, R)`` reuses a live daemon (found through ``W/workspace.json``) or spawns
one detached and waits for it; ``shutdown(W)`` stops it; ``reset(W)`` also deletes W.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from localcml.environment import PACKAGE_ROOT
from localcml.models.router import BUSY_TIMEOUT_SECONDS
from monitoring.core.errors import ConfigError, PlatformError

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
#: Daemons this process spawned, by pid: kept so they can be reaped (no zombies, no ResourceWarning).
_SPAWNED: dict[int, subprocess.Popen] = {}


class WorkspaceInfo(dict):
    """What ``ensure_running`` returns: a dict whose keys are also attributes (``info.env``)."""

    def __getattr__(self, name: str):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_info(workspace_dir: str | Path) -> dict | None:
    """The live daemon's ``workspace.json`` (with its secrets), or None when none answers."""
    path = Path(workspace_dir) / "workspace.json"
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not _alive(int(info.get("pid", 0))):
        return None
    try:
        with urllib.request.urlopen(f"{info['url']}/local/v1/status", timeout=2) as resp:
            status = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError, KeyError):
        return None
    if status.get("pid") != info.get("pid"):
        return None
    secrets = json.loads((Path(workspace_dir) / "secrets.json").read_text())
    return {**status, **secrets}


def engine_env_of(info: dict) -> dict[str, str]:
    """The engine variables of a running daemon described by ``read_info``/``ensure_running``."""
    from localcml.environment import engine_env

    return engine_env(
        url=info["url"],
        api_key=info["api_key"],
        model_api_key=info["model_api_key"],
        project_id=info["project_id"],
        project_name=info["project_name"],
        workspace_dir=info["workspace_dir"],
        code_dir=info["project_root"],
        metrics_url=info["metrics_url"],
        project=info.get("project_env"),
        runtime=info.get("runtime_env"),
    )


def ensure_running(
    workspace_dir: str | Path,
    project_root: str | Path,
    metrics_url: str | None = None,
    timeout: float = START_TIMEOUT_SECONDS,
) -> WorkspaceInfo:
    """The running daemon of W, started (detached) if none is live.

    Returns:
        A dict (keys also readable as attributes): ``url, pid, port, project_id, project_name,
        workspace_dir, project_root, metrics_url, model_url, api_key, model_api_key, env`` (``env``: engine variables).

    Raises:
        ConfigError: a live daemon of W serves another project root.
        PlatformError: the daemon did not come up within ``timeout`` (its log is named).
    """
    workspace = Path(workspace_dir).resolve()
    root = Path(project_root).resolve()
    info = read_info(workspace)
    if info is None:
        workspace.mkdir(parents=True, exist_ok=True)
        log_path = workspace / "daemon.log"
        argv = [sys.executable, "-m", "localcml.daemon", "--dir", str(workspace), "--project-root", str(root)]
        if metrics_url:
            argv += ["--metrics-url", metrics_url]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])),
        }
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=root,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        _SPAWNED[proc.pid] = proc
        deadline = time.monotonic() + timeout
        while info is None or info.get("pid") != proc.pid:
            if proc.poll() is not None:
                raise PlatformError(f"the local workspace daemon exited with code {proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise PlatformError(f"the local workspace daemon did not start within {timeout:g} s; see {log_path}")
            time.sleep(POLL_SECONDS)  # a real process is starting: short bounded polling
            info = read_info(workspace)
    if Path(info["project_root"]) != root:
        raise ConfigError(
            f"{workspace}: the running local workspace serves project root {info['project_root']}, "
            f"not {root}; run `reset` on it or choose another workspace_dir"
        )
    return WorkspaceInfo(info, env=engine_env_of(info))


def shutdown(workspace_dir: str | Path, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop W's daemon (SIGTERM, then SIGKILL after ``timeout``). True if one was running."""
    info = read_info(workspace_dir)
    if info is None:
        return False
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    child = _SPAWNED.pop(pid, None)
    if child is not None:  # our own child: wait for it (a zombie would look alive)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return True
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)  # another process's daemon: poll until it has gone
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)
    return True


#: What a workspace directory holds (``reset`` deletes nothing else: a mistyped W is refused, not wiped).
WORKSPACE_ENTRIES = (
    "workspace.json",
    "workspace.db*",
    "metrics.db*",
    "clock.json",
    "clock.tmp",
    "secrets.json",
    "daemon.log",
    "faults.json",
    ".faults.lock",
    ".*.tmp",
    "builds",
    "deployments",
    "runs",
    "projects",
    "applications",
)


def reset(workspace_dir: str | Path) -> None:
    """Stop W's daemon and delete W (state, logs, snapshots, metrics, secrets).

    Raises:
        ConfigError: W holds files a local workspace never writes (e.g. W is the project itself).
    """
    workspace = Path(workspace_dir)
    if workspace.is_dir():
        strangers = sorted(
            p.name
            for p in workspace.iterdir()
            if not any(fnmatch.fnmatch(p.name, pattern) for pattern in WORKSPACE_ENTRIES)
        )
        if strangers:
            raise ConfigError(
                f"{workspace.resolve()} does not look like a local workspace directory (it holds "
                f"{', '.join(strangers[:5])}); not deleting it: check platform.local.workspace_dir"
            )
    shutdown(workspace)
    shutil.rmtree(workspace, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m localcml.daemon", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path, help="the workspace directory W")
    parser.add_argument("--project-root", required=True, type=Path, help="the project's files")
    parser.add_argument("--metrics-url", default=None, help="metrics store URL (default sqlite:///W/metrics.db)")
    parser.add_argument("--busy-timeout", type=float, default=BUSY_TIMEOUT_SECONDS)
    args = parser.parse_args(argv)
    from localcml.workspace import LocalWorkspace
    from monitoring.core.logs import configure_logging

    configure_logging("local-workspace")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    workspace = LocalWorkspace(args.dir, args.project_root, args.metrics_url, args.busy_timeout, schedules=True).start()
    try:
        stop.wait()
    finally:
        workspace.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
