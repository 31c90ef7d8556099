"""Model deployments: replica processes of the model server, health checks, replacement, stops.

A deployment is ``pending`` when created, ``deploying`` while its replicas start, ``deployed``
once every replica answers ``GET /health`` (only then is the model's previous deployment
stopped), ``failed`` if they do not within the health timeout (the previous one keeps
serving), and ``stopping`` -> ``stopped`` when stopped. The fault point ``deploy``
(``never-healthy[:DURATION]``) starts replicas that never answer ``/health``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from localcml.core.errors import precondition
from localcml.core.processes import kill_group
from localcml.core.state import ApiState
from localcml.environment import process_env
from localcml.faults import UNHEALTHY_ENV, FaultPlan
from localcml.models.builds import Observer, publish_now
from monitoring.core.logs import KV

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 5.0


@dataclass
class Replica:
    """One model server process of a deployment."""

    index: int
    proc: subprocess.Popen
    ready_file: Path
    port: int | None = None
    busy: bool = False


@dataclass
class ReplicaPool:
    """The replicas of one live deployment; each serves one request at a time."""

    deployment_id: str
    replicas: list[Replica]
    cond: threading.Condition = field(default_factory=threading.Condition)

    def acquire(self, timeout: float) -> Replica | None:
        """A free replica (marked busy), waiting up to ``timeout`` seconds; None if none frees up."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for replica in self.replicas:
                    if not replica.busy:
                        replica.busy = True
                        return replica
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self.cond.wait(remaining)

    def release(self, replica: Replica) -> None:
        with self.cond:
            replica.busy = False
            self.cond.notify()


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


class Deployer:
    """Starts and stops the replica processes of deployments.

    Args:
        state: the API state.
        workspace_dir: W (replica logs and ready files in ``W/deployments/<id>/``).
        snapshot_dir: the build snapshot directory of a build id.
        engine_env: the CML engine variables of a project's engines, for code in a given directory.
        health_timeout: seconds the replicas have to answer ``/health``.
        faults: the workspace's fault plan.
        observe: called to publish ``deployed`` (step ``after_deploy`` of the run that made it).
    """

    def __init__(
        self,
        state: ApiState,
        workspace_dir: Path,
        snapshot_dir: Callable[[str], Path],
        engine_env: Callable[[str | None, Path], dict[str, str]],
        health_timeout: float = HEALTH_TIMEOUT_SECONDS,
        faults: FaultPlan | None = None,
        observe: Observer = publish_now,
    ):
        self.state = state
        self.faults = faults
        self.observe = observe
        self.root = Path(workspace_dir) / "deployments"
        self.snapshot_dir = snapshot_dir
        self.engine_env = engine_env
        self.health_timeout = health_timeout
        self._lock = threading.RLock()
        self._pools: dict[str, ReplicaPool] = {}
        #: model id -> its newest deployed deployment: what a model call reaches, without reading the history
        self._live: dict[str, str] = {}
        self._starting: dict[str, list[Replica]] = {}
        self._cancelled: set[str] = set()
        self._closed = False

    def _set(self, dep_id: str, status: str) -> dict:
        def change(dep: dict) -> None:
            dep["status"] = status
            dep["updated_at"] = self.state.now()
            if status == "stopped":
                dep["stopped_at"] = dep["updated_at"]

        return self.state.update("deployment", dep_id, change)

    # -- starting ----------------------------------------------------------------------------
    def start(self, dep_id: str) -> None:
        """Deploy in a background thread."""
        with self._lock:
            self._cancelled.discard(dep_id)
            self._starting[dep_id] = []
        threading.Thread(target=self._deploy, args=(dep_id,), daemon=True, name=f"deploy-{dep_id}").start()

    def _spawn(self, dep: dict, index: int, env: dict[str, str]) -> Replica:
        folder = self.root / dep["id"]
        folder.mkdir(parents=True, exist_ok=True)
        ready = folder / f"replica-{index}.ready"
        ready.unlink(missing_ok=True)
        code_dir = self.snapshot_dir(dep["build_id"])
        build = self.state.get("build", dep["build_id"])
        argv = [
            sys.executable,
            "-m",
            "localcml.models.replica",
            "--build-dir",
            str(code_dir),
            "--file",
            build["file_path"],
            "--function",
            build["function_name"],
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--ready-file",
            str(ready),
        ]
        with open(folder / f"replica-{index}.log", "ab") as out:
            proc = subprocess.Popen(
                argv,
                cwd=code_dir,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return Replica(index, proc, ready)

    def _env(self, dep: dict) -> dict[str, str]:
        model = self.state.get("model", dep["model_id"])
        build = self.state.get("build", dep["build_id"])
        identity = {
            "CML_MONITOR_DEPLOYMENT_CRN": dep["crn"],
            "CML_MONITOR_BUILD_CRN": build["crn"],
            "CML_MONITOR_MODEL_CRN": model["crn"],
            "CML_MONITOR_MODEL_ACCESS_KEY": model["access_key"],
            "CML_MONITOR_AUTH_ENABLED": "true" if model["auth_enabled"] else "false",
        }
        return process_env(
            self.engine_env(dep.get("project_id"), self.snapshot_dir(dep["build_id"])),
            json.loads(dep["environment"]),
            identity,
        )

    def _wait_healthy(self, dep_id: str, replicas: list[Replica], timeout: float) -> str | None:
        """None once every replica is healthy, else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dep_id in self._cancelled or self._closed:
                return "stopped while deploying"
            for rep in replicas:
                code = rep.proc.poll()
                if code is not None:
                    return f"replica {rep.index} exited with code {code} before it was healthy"
                if rep.port is None and rep.ready_file.is_file():
                    try:
                        rep.port = int(json.loads(rep.ready_file.read_text())["port"])
                    except (ValueError, KeyError):
                        continue  # being written
            if all(r.port is not None and _healthy(r.port) for r in replicas):
                return None
            time.sleep(POLL_SECONDS)  # a real process is starting: short bounded polling
        return f"replicas were not healthy within {timeout:g} s"

    def _wait_built(self, dep: dict) -> str | None:
        """Wait while the deployment's build is still building; None once built, else why not."""
        while True:
            build = self.state.get("build", dep["build_id"])
            if build is None:
                return f"model build {dep['build_id']} is gone"
            if build["status"] == "built":
                return None
            if build["status"] not in ("pending", "building"):
                return f"model build {build['id']} ended with status {build['status']!r}"
            if dep["id"] in self._cancelled or self._closed:
                return "stopped while waiting for its build"
            time.sleep(POLL_SECONDS)  # the build check is a real process: short bounded polling

    def _deploy(self, dep_id: str) -> None:
        waiting = self._wait_built(self.state.get("deployment", dep_id))
        if waiting is not None and self._closed:
            return  # the workspace is stopping: the deployment stays pending, the next daemon resumes it
        if waiting is not None:
            return self._not_deployed(dep_id, [], waiting)
        dep = self._set(dep_id, "deploying")
        replicas: list[Replica] = []
        fault = self.faults.take("deploy") if self.faults is not None else None
        timeout = self.health_timeout
        try:
            env = self._env(dep)
            if fault is not None:  # never-healthy: replicas run but fail their health check
                env[UNHEALTHY_ENV] = "1"
                timeout = min(timeout, fault.seconds) if fault.seconds is not None else timeout
            for index in range(max(1, int(dep.get("replicas") or 1))):
                replicas.append(self._spawn(dep, index, env))
                self._starting[dep_id] = replicas
            problem = self._wait_healthy(dep_id, replicas, timeout)
        except (OSError, KeyError, TypeError) as exc:
            problem = f"cannot start replicas: {exc}"
        with self._lock:
            self._starting.pop(dep_id, None)
            if problem is None and not self._closed:
                self._pools[dep_id] = ReplicaPool(dep_id, replicas)
                self.observe("after_deploy", dep.get("_run_id"), lambda: self._set(dep_id, "deployed"))
                self._live[dep["model_id"]] = dep_id
        if problem is not None and self._closed:
            self._kill(replicas)  # the workspace is stopping: the status stays, the next daemon resumes it
            return
        if problem is not None:
            return self._not_deployed(dep_id, replicas, problem)
        log.info("model deployment deployed %s", KV(deployment=dep_id, replicas=len(replicas)))
        for other in self.state.list("deployment"):
            if other["model_id"] == dep["model_id"] and other["id"] != dep_id and other["status"] == "deployed":
                self.stop(other["id"])  # replaced only now that the new one serves

    def _not_deployed(self, dep_id: str, replicas: list[Replica], problem: str) -> None:
        self._kill(replicas)
        status = "stopped" if dep_id in self._cancelled else "failed"
        self._set(dep_id, status)
        (self.root / dep_id).mkdir(parents=True, exist_ok=True)
        with open(self.root / dep_id / "deploy.log", "a") as out:
            out.write(f"{self.state.now()} deployment {status}: {problem}\n")
        log.warning("model deployment not deployed %s", KV(deployment=dep_id, status=status, reason=problem))

    def stop_project(self, project_id: str) -> None:
        """Stop every deployment of a project (it is being deleted)."""
        for dep in self.state.list("deployment"):
            if dep.get("project_id") == project_id and dep["status"] not in ("stopped", "failed"):
                self.stop(dep["id"])

    def busy(self) -> bool:
        """Whether a deployment is on its way up or down."""
        return any(d["status"] in ("pending", "deploying", "stopping") for d in self.state.list("deployment"))

    # -- serving and stopping ----------------------------------------------------------------
    def live_pool(self, model_id: str) -> ReplicaPool | None:
        """The replicas of the model's newest deployed deployment, if it has one."""
        with self._lock:
            known = self._live.get(model_id)
            if known in self._pools:
                return self._pools[known]
            live = [
                d
                for d in self.state.list("deployment")
                if d["model_id"] == model_id and d["status"] == "deployed" and d["id"] in self._pools
            ]
            if not live:
                return None
            self._live[model_id] = live[-1]["id"]
            return self._pools[live[-1]["id"]]

    def _kill(self, replicas: list[Replica]) -> None:
        for rep in replicas:
            if rep.proc.poll() is None:
                kill_group(rep.proc, 15)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for rep in replicas:
            try:
                rep.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_group(rep.proc)
                rep.proc.wait()

    def stop(self, dep_id: str) -> dict:
        """Stop a deployment: no new requests reach it, its replicas end, status ``stopped``."""
        with self._lock:
            dep = self.state.get("deployment", dep_id)
            if dep["status"] in ("pending", "deploying"):
                self._cancelled.add(dep_id)
                return self._set(dep_id, "stopping")
            pool = self._pools.pop(dep_id, None)
            if dep["status"] == "stopped" and pool is None:
                return dep
            self._set(dep_id, "stopping")
        if pool is not None:
            self._kill(pool.replicas)
        return self._set(dep_id, "stopped")

    def restart(self, dep_id: str) -> dict:
        """Start the deployment's replicas again (same id and CRN)."""
        with self._lock:
            dep = self.state.get("deployment", dep_id)
            if dep["status"] in ("pending", "deploying", "stopping"):
                raise precondition(f"model deployment {dep_id} is {dep['status']}; restart it once that finishes")
            pool = self._pools.pop(dep_id, None)
            self._set(dep_id, "pending")
        if pool is not None:
            self._kill(pool.replicas)
        self.start(dep_id)
        return self.state.get("deployment", dep_id)

    def stop_all(self) -> None:
        """End every replica process (statuses stay: a restarted daemon resumes deployed models)."""
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
            self._pools.clear()
            starting = [r for reps in self._starting.values() for r in reps]
        self._kill([r for p in pools for r in p.replicas] + starting)

    def recover(self) -> None:
        """Resume what a previous daemon left: deployed or deploying models start again."""
        for dep in self.state.list("deployment"):
            if dep["status"] in ("deployed", "deploying", "pending"):
                self.start(dep["id"])
            elif dep["status"] == "stopping":
                self._set(dep["id"], "stopped")
