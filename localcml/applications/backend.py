"""Applications as real processes: each runs its script in the project's directory and serves on loopback.

CML starts an application's script in an engine whose ``CDSW_APP_PORT`` (and
``CDSW_READONLY_PORT``, ``CDSW_PUBLIC_PORT``) name the ports it may serve on, and publishes it at
``http(s)://<subdomain>.<domain>``. Locally the script runs under the same engine wrapper as a
job (``python -m localcml.jobs.engine``), with free loopback ports in those variables; the
workspace answers ``http://<subdomain>.<CDSW_DOMAIN>/...`` by forwarding to the port the
application listens on. Statuses: APPLICATION_STARTING until a port answers, APPLICATION_RUNNING,
APPLICATION_STOPPING -> APPLICATION_STOPPED, APPLICATION_FAILED when the script exits by itself.
An application outlives a crash of the workspace daemon; the restarted daemon adopts it (same
process, same ports) and watches it again.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cmlbase.logs import KV
from localcml.core.process_table import ProcessTable
from localcml.core.processes import EXIT_FILE_ENV, Adopted, marker, spawn, stop_group
from localcml.core.state import ApiState, public_id
from localcml.environment import process_env

log = logging.getLogger(__name__)

#: The engine variables naming an application's ports, in the order the workspace forwards to them.
PORT_VARIABLES = ("CDSW_APP_PORT", "CDSW_READONLY_PORT", "CDSW_PUBLIC_PORT")
START_TIMEOUT_SECONDS = 120.0
STOP_GRACE_SECONDS = 5.0
POLL_SECONDS = 0.1
ACTIVE = ("APPLICATION_STARTING", "APPLICATION_RUNNING", "APPLICATION_STOPPING")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Running:
    """One application's engine process and its ports."""

    proc: subprocess.Popen | Adopted
    ports: dict[str, int]
    stopping: bool = False


class Applications:
    """Starts, watches and stops application processes.

    Args:
        state: the API state.
        workspace_dir: W (logs in ``W/applications/<id>.log``).
        project_dir: the directory of a project (the application's working directory).
        engine_env: the CML engine variables of a project's engines.
        start_timeout: seconds an application has to listen on one of its ports.
    """

    def __init__(
        self,
        state: ApiState,
        workspace_dir: Path,
        project_dir: Callable[[str], Path],
        engine_env: Callable[[str], dict[str, str]],
        start_timeout: float = START_TIMEOUT_SECONDS,
    ):
        self.state = state
        self.workspace_dir = Path(workspace_dir)
        self.logs = self.workspace_dir / "applications"
        self.project_dir = project_dir
        self.engine_env = engine_env
        self.start_timeout = start_timeout
        self._lock = threading.RLock()
        self._running: dict[str, Running] = {}
        self._closed = False

    def _set(self, app_id: str, status: str) -> dict:
        stamps = {"APPLICATION_STARTING": "starting_at", "APPLICATION_RUNNING": "running_at"}

        def change(app: dict) -> None:
            app["status"] = status
            app["updated_at"] = self.state.now()
            if status in stamps:
                app[stamps[status]] = app["updated_at"]
            if status in ("APPLICATION_STOPPED", "APPLICATION_FAILED"):
                app["stopped_at"] = app["updated_at"]

        return self.state.update("application", app_id, change)

    def start(self, app_id: str) -> dict:
        """Start the application's engine (its status becomes APPLICATION_STARTING)."""
        with self._lock:
            app = self.state.require("application", app_id)
            if self._closed:
                return app
            ports = {name: free_port() for name in PORT_VARIABLES}
            engine = {"CDSW_ENGINE_ID": public_id().replace("-", ""), **{k: str(v) for k, v in ports.items()}}
            own = {**marker(self.workspace_dir, f"app:{app_id}"), EXIT_FILE_ENV: str(self._exit_file(app_id))}
            env = process_env(self.engine_env(app["_project_id"]), json.loads(app["environment"] or "{}"), engine, own)
            self.logs.mkdir(parents=True, exist_ok=True)
            self._exit_file(app_id).unlink(missing_ok=True)
            proc = spawn(
                [sys.executable, "-m", "localcml.jobs.engine", app["script"]],
                cwd=self.project_dir(app["_project_id"]),
                env=env,
                log_path=self.logs / f"{app_id}.log",
            )
            self._running[app_id] = Running(proc, ports)
            self.state.update("application", app_id, lambda a: a.update(_pid=proc.pid, _ports=ports))
            app = self._set(app_id, "APPLICATION_STARTING")
        threading.Thread(target=self._watch, args=(app_id, proc), daemon=True, name=f"app-{app_id}").start()
        log.info("application started %s", KV(application=app_id, subdomain=app["subdomain"], pid=proc.pid))
        return app

    def _exit_file(self, app_id: str) -> Path:
        return self.logs / f"{app_id}.exit"

    def _watch(self, app_id: str, proc: subprocess.Popen | Adopted, announced: bool = False) -> None:
        deadline = time.monotonic() + self.start_timeout
        while proc.poll() is None:
            if not announced and self.port(app_id) is not None:
                self._set(app_id, "APPLICATION_RUNNING")
                announced = True
            if not announced and time.monotonic() > deadline:
                log.warning("application never listened %s", KV(application=app_id, waited_s=self.start_timeout))
                self.stop(app_id, failed=True)
                return
            time.sleep(POLL_SECONDS)  # a real process is starting or serving: short bounded polling
        with self._lock:
            running = self._running.get(app_id)
            if running is None or running.proc is not proc:
                return  # restarted meanwhile: the new process is watched by its own thread
            del self._running[app_id]
            if self._closed or self.state.get("application", app_id) is None:
                return
            stopped = running.stopping
        clean = stopped or proc.returncode == 0
        self._set(app_id, "APPLICATION_STOPPED" if clean else "APPLICATION_FAILED")
        if not clean:
            log.warning("application exited %s", KV(application=app_id, code=proc.returncode))

    def port(self, app_id: str) -> int | None:
        """The first of the application's ports that answers, if it runs."""
        running = self._running.get(app_id)
        if running is None:
            return None
        return next((p for p in running.ports.values() if _listening(p)), None)

    def by_subdomain(self, subdomain: str) -> dict | None:
        return next((a for a in self.state.list("application") if a["subdomain"] == subdomain), None)

    def stop(self, app_id: str, failed: bool = False) -> dict:
        """Stop the application's engine (SIGTERM, then SIGKILL); its status ends APPLICATION_STOPPED."""
        with self._lock:
            running = self._running.pop(app_id, None)
            if running is None:
                app = self.state.require("application", app_id)
                if app["status"] in ACTIVE:
                    app = self._set(app_id, "APPLICATION_STOPPED")
                return app
            running.stopping = True
            self._set(app_id, "APPLICATION_STOPPING")
        stop_group(running.proc, STOP_GRACE_SECONDS)
        return self._set(app_id, "APPLICATION_FAILED" if failed else "APPLICATION_STOPPED")

    def stop_project(self, project_id: str) -> None:
        for app in self.state.list("application", project_id):
            self.stop(app["id"])

    def stop_all(self) -> None:
        """End every application process (statuses stay: a restarted daemon starts them again)."""
        with self._lock:
            self._closed = True
            running = list(self._running.values())
            self._running.clear()
        for item in running:
            stop_group(item.proc, STOP_GRACE_SECONDS)

    def recover(self, table: ProcessTable) -> None:
        """Take over the applications a previous daemon left: adopt those still running, start the others."""
        for app in self.state.list("application"):
            role = f"app:{app['id']}"
            if app["status"] == "APPLICATION_STOPPING":
                table.kill(role)
                self._set(app["id"], "APPLICATION_STOPPED")
            elif app["status"] in ("APPLICATION_STARTING", "APPLICATION_RUNNING"):
                found = table.claim(role)
                try:
                    engine = Adopted(found.pid, self._exit_file(app["id"])) if found and app.get("_ports") else None
                except ProcessLookupError:
                    engine = None
                if engine is None:
                    table.kill(role)
                    self.start(app["id"])
                    continue
                with self._lock:
                    self._running[app["id"]] = Running(engine, app["_ports"])
                log.info("application adopted %s", KV(application=app["id"], pid=engine.pid))
                running = app["status"] == "APPLICATION_RUNNING"
                threading.Thread(
                    target=self._watch, args=(app["id"], engine, running), daemon=True, name=f"app-{app['id']}"
                ).start()
