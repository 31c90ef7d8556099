"""The local workspace as a standalone daemon, and helpers to find, start, stop and reset it.

``python -m localcml.daemon --dir W --project-root R`` serves until SIGTERM/SIGINT.
``ensure_running(W, R)`` reuses a live daemon (found through ``W/workspace.json``) or spawns
one detached and waits for it; ``shutdown(W)`` stops it, and whatever a crashed daemon left
running; ``reset(W)`` also deletes W. A daemon started while another one serves W exits with
``EXIT_BUSY`` (the directory lock), and ``ensure_running`` then uses the one that serves.
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
from collections.abc import Sequence
from pathlib import Path

from cmlbase import metrics_store
from cmlbase.logs import KV, configure_logging
from localcml.core.dirlock import LOCK_FILE, DirectoryLock, WorkspaceBusy
from localcml.core.errors import ConfigError, PlatformError
from localcml.core.process_records import RECORDS_DIR
from localcml.core.process_table import ProcessTable
from localcml.core.processes import marker, signal_group
from localcml.datalake.connections import DATALAKE_DIR, DEFAULT_CONNECTION
from localcml.environment import PACKAGE_ROOT
from localcml.jobs.runner import stopped_without_daemon
from localcml.models.router import BUSY_TIMEOUT_SECONDS
from localcml.models.supervisor import RestartPolicy
from localcml.projects.files import DEFAULT_MAX_BYTES

log = logging.getLogger(__name__)

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 30.0
POLL_SECONDS = 0.05
#: The daemon's exit status when another live daemon serves its directory (EX_TEMPFAIL).
EXIT_BUSY = 75
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
    daemon_args: Sequence[str] = (),
) -> WorkspaceInfo:
    """The running daemon of W, started (detached) if none is live.

    Args:
        workspace_dir: W.
        project_root: the project the workspace serves.
        metrics_url: the metrics store URL (default ``sqlite:///W/metrics.db``).
        timeout: seconds the daemon has to come up.
        daemon_args: more arguments of a daemon started here (``--replica-backoff 0``).

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
    deadline = time.monotonic() + timeout
    while info is None:
        workspace.mkdir(parents=True, exist_ok=True)
        proc = _spawn_daemon(workspace, root, metrics_url, daemon_args)
        info = _wait_up(workspace, proc, deadline, timeout)
    if Path(info["project_root"]) != root:
        raise ConfigError(
            f"{workspace}: the running local workspace serves project root {info['project_root']}, "
            f"not {root}; run `reset` on it or choose another workspace_dir"
        )
    return WorkspaceInfo(info, env=engine_env_of(info))


def _spawn_daemon(workspace: Path, root: Path, metrics_url: str | None, daemon_args: Sequence[str]) -> subprocess.Popen:
    argv = [sys.executable, "-m", "localcml.daemon", "--dir", str(workspace), "--project-root", str(root)]
    if metrics_url:
        argv += ["--metrics-url", metrics_url]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT), os.environ.get("PYTHONPATH")])),
        **marker(workspace, "daemon"),
    }
    with open(workspace / "daemon.log", "ab") as out:
        proc = subprocess.Popen(
            [*argv, *daemon_args],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    _SPAWNED[proc.pid] = proc
    return proc


def _wait_up(workspace: Path, proc: subprocess.Popen, deadline: float, timeout: float) -> dict | None:
    """The info of the daemon serving W once it answers; None when ``proc`` lost the race and none serves."""
    log_path = workspace / "daemon.log"
    while True:
        info = read_info(workspace)
        if info is not None and info.get("pid") == proc.pid:
            return info
        code = proc.poll()
        if code == EXIT_BUSY:
            _SPAWNED.pop(proc.pid, None)  # it lost the race to another daemon of W, and has exited
        if info is not None and code == EXIT_BUSY:
            return info
        if code is not None and code != EXIT_BUSY:
            raise PlatformError(f"the local workspace daemon exited with code {code}; see {log_path}")
        if code == EXIT_BUSY and not DirectoryLock.held(workspace):
            return None  # the daemon that held W has gone without serving: start one again
        if time.monotonic() > deadline:
            raise PlatformError(f"the local workspace daemon did not start within {timeout:g} s; see {log_path}")
        time.sleep(POLL_SECONDS)  # a real process is starting: short bounded polling


def shutdown(workspace_dir: str | Path, timeout: float = STOP_TIMEOUT_SECONDS) -> bool:
    """Stop W's daemon (SIGTERM, then SIGKILL after ``timeout``) and what a crashed one left running.

    A daemon killed without its stop leaves its job engines, replicas and applications running.
    They are stopped here too (SIGTERM to each process group, SIGKILL after ``timeout``); a job
    run stopped so is recorded as stopped by the next daemon, with a line in its log.

    Returns:
        True if a daemon or anything it left was running.
    """
    info = read_info(workspace_dir)
    if info is not None:
        _stop_daemon(int(info["pid"]), timeout)
    return _sweep(Path(workspace_dir), timeout) or info is not None


def _stop_daemon(pid: int, timeout: float) -> None:
    os.kill(pid, signal.SIGTERM)
    child = _SPAWNED.pop(pid, None)
    if child is not None:  # our own child: wait for it (a zombie would look alive)
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)  # another process's daemon: poll until it has gone
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _left_behind(workspace: Path) -> list:
    """The processes of W but a daemon (one starting now is not left behind)."""
    return [p for p in ProcessTable.scan(workspace).processes if p.role != "daemon"]


def _sweep(workspace: Path, timeout: float) -> bool:
    """Stop every process of W that no daemon watches (none serves W now); True if there were any."""
    if not workspace.is_dir() or DirectoryLock.held(workspace):
        return False  # a daemon serves W (again): its processes are its own
    left = _left_behind(workspace)
    if not left:
        return False
    for role in dict.fromkeys(p.role for p in left if p.role.startswith("run:")):
        stopped_without_daemon(workspace, role[len("run:") :], "stopped by `local down` while no daemon ran")
    groups = sorted({p.pgid for p in left})
    for pgid in groups:
        signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _left_behind(workspace) and time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)  # real processes are stopping: short bounded polling
    for pgid in {p.pgid for p in _left_behind(workspace)}:
        signal_group(pgid)
    log.info("processes of a crashed workspace stopped %s", KV(workspace=workspace, groups=len(groups)))
    return True


#: What a workspace directory holds (``reset`` deletes nothing else: a mistyped W is refused, not wiped).
WORKSPACE_ENTRIES = (
    "workspace.json",
    LOCK_FILE,
    "workspace.db*",
    f"{metrics_store.DEFAULT_FILE}*",
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
    "mlflow",
    RECORDS_DIR,
    DATALAKE_DIR,
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
    parser.add_argument(
        "--replica-backoff",
        type=float,
        default=RestartPolicy.backoff_s,
        help="seconds before the second restart in a row of a dead model replica (doubling, up to 5 min)",
    )
    parser.add_argument(
        "--build-max-mb",
        type=float,
        default=DEFAULT_MAX_BYTES / 2**20,
        help="the most a model build may copy of a project, in MB (a larger project fails its build, naming its largest paths)",
    )
    parser.add_argument(
        "--data-connection",
        action="append",
        default=None,
        metavar="NAME",
        help=f"a data connection name cml.data_v1.get_connection opens (repeat for more; default {DEFAULT_CONNECTION})",
    )
    args = parser.parse_args(argv)
    from localcml.workspace import LocalWorkspace

    configure_logging("local-workspace")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    policy = RestartPolicy(backoff_s=args.replica_backoff)
    workspace = LocalWorkspace(
        args.dir,
        args.project_root,
        args.metrics_url,
        args.busy_timeout,
        schedules=True,
        restart_policy=policy,
        build_max_bytes=int(args.build_max_mb * 2**20),
        data_connections=tuple(args.data_connection or (DEFAULT_CONNECTION,)),
    )
    try:
        workspace.start()
    except WorkspaceBusy as exc:
        log.error("not starting: %s", exc)
        return EXIT_BUSY
    try:
        stop.wait()
    finally:
        workspace.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
