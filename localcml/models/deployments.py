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
from collections.abc import Callable
from pathlib import Path

from cmlbase.logs import KV
from localcml.core.errors import precondition
from localcml.core.process_records import write_record
from localcml.core.process_table import ProcessTable
from localcml.core.processes import kill_group, marker, spawn
from localcml.core.state import ApiState
from localcml.environment import process_env
from localcml.faults import UNHEALTHY_ENV, FaultPlan
from localcml.models.builds import Observer, publish_now
from localcml.models.pool import Replica, ReplicaPool, healthy
from localcml.models.recovery import ACTIVE, recover_deployments, replica_role
from localcml.models.supervisor import RestartPolicy, Supervisor

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 120.0
#: The module a replica process runs (``python -m``): its command line names it.
REPLICA_MODULE = "localcml.models.replica"
POLL_SECONDS = 0.05
STOP_GRACE_SECONDS = 5.0


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
        restart_policy: how dead replicas are restarted (backoff, crash loop).
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
        restart_policy: RestartPolicy | None = None,
    ):
        self.state = state
        self.workspace_dir = Path(workspace_dir)
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
        self.supervisor = Supervisor(restart_policy or RestartPolicy(), self)

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
            REPLICA_MODULE,
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
        role = replica_role(dep["id"], index)
        proc = spawn(
            argv,
            cwd=code_dir,
            env={**env, **marker(self.workspace_dir, role)},
            log_path=folder / f"replica-{index}.log",
        )
        # found again by pid, start time and command line should its environment not name W
        write_record(self.workspace_dir, role, proc.pid, (REPLICA_MODULE, f"{dep['id']}/{ready.name}"))
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

    def _wait_healthy(self, replicas: list[Replica], timeout: float, cancelled: Callable[[], bool]) -> str | None:
        """None once every replica is healthy, else why not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cancelled() or self._closed:
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
            if all(r.port is not None and healthy(r.port) for r in replicas):
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
            problem = self._wait_healthy(replicas, timeout, lambda: dep_id in self._cancelled)
        except (OSError, KeyError, TypeError) as exc:
            problem = f"cannot start replicas: {exc}"
        newer = None
        with self._lock:
            self._starting.pop(dep_id, None)
            if problem is None and not self._closed:
                newer = self._newer_deployed(dep_id)
                if newer is None:
                    pool = self._pools[dep_id] = ReplicaPool(dep_id, replicas)
                    self.observe("after_deploy", dep.get("_run_id"), lambda: self._set(dep_id, "deployed"))
                    self._live[dep["model_id"]] = dep_id
                    self.supervisor.watch(dep_id, pool)
        if problem is not None and self._closed:
            self._kill(replicas)  # the workspace is stopping: the status stays, the next daemon resumes it
            return
        if newer is not None:
            problem = f"superseded by deployment {newer}, requested later and already serving"
            self._cancelled.add(dep_id)  # not a failure: the newest requested deployment of a model wins
        if problem is not None:
            return self._not_deployed(dep_id, replicas, problem)
        log.info("model deployment deployed %s", KV(deployment=dep_id, replicas=len(replicas)))
        for other in self._older(dep_id):
            self.note(other["id"], f"replaced by deployment {dep_id}, which now serves")
            self.stop(other["id"])  # replaced only now that the new one serves

    def _of_model(self, dep_id: str) -> tuple[int, list[dict]]:
        """(this deployment's creation order, every deployment of its model in creation order)."""
        deps = self.state.list("deployment")
        mine = next(d for d in deps if d["id"] == dep_id)
        return mine["_seq"], [d for d in deps if d["model_id"] == mine["model_id"]]

    def _newer_deployed(self, dep_id: str) -> str | None:
        """A deployment of the same model requested after this one and already deployed, if any."""
        seq, deps = self._of_model(dep_id)
        return next((d["id"] for d in deps if d["_seq"] > seq and d["status"] == "deployed"), None)

    def _older(self, dep_id: str) -> list[dict]:
        """The deployments of the same model requested before this one that still serve or come up."""
        seq, deps = self._of_model(dep_id)
        return [d for d in deps if d["_seq"] < seq and d["status"] in ACTIVE]

    def note(self, dep_id: str, text: str) -> None:
        """Append a timestamped line to the deployment's ``deploy.log``."""
        (self.root / dep_id).mkdir(parents=True, exist_ok=True)
        with open(self.root / dep_id / "deploy.log", "a") as out:
            out.write(f"{self.state.now()} {text}\n")

    def _not_deployed(self, dep_id: str, replicas: list[Replica], problem: str) -> None:
        self._kill(replicas)
        status = "stopped" if dep_id in self._cancelled else "failed"
        self.note(dep_id, f"deployment {status}: {problem}")  # the reason is there once the status says so
        self._set(dep_id, status)
        log.warning("model deployment not deployed %s", KV(deployment=dep_id, status=status, reason=problem))

    def stop_project(self, project_id: str) -> None:
        """Stop every deployment of a project (it is being deleted)."""
        for dep in self.state.list("deployment"):
            if dep.get("project_id") == project_id and dep["status"] not in ("stopped", "failed"):
                self.stop(dep["id"])

    def busy(self) -> bool:
        """Whether a deployment is on its way up or down, or a replica is being restarted."""
        if any(d["status"] in ("pending", "deploying", "stopping") for d in self.state.list("deployment")):
            return True
        with self._lock:
            return any(pool.restarting() for pool in self._pools.values())

    # -- supervision (``Supervisor`` calls these) ---------------------------------------------
    def respawn(self, dep_id: str, pool: ReplicaPool, replica: Replica) -> str | None:
        """Start a dead replica's process again and wait until it is healthy; None, else why not."""
        try:
            dep = self.state.require("deployment", dep_id)
            env = self._env(dep)
            with self._lock:  # registered before it can be seen: a stop meanwhile kills it too
                if pool.stopped.is_set():
                    return "stopped"
                fresh = self._spawn(dep, replica.index, env)
                replica.proc, replica.port = fresh.proc, None
        except (OSError, KeyError, TypeError, ValueError) as exc:
            return f"replica {replica.index} cannot start: {exc}"
        problem = self._wait_healthy([fresh], self.health_timeout, pool.stopped.is_set)
        if problem is not None:
            self._kill([fresh])
            return problem
        pool.up(replica, fresh.port)
        return None

    def crash_loop(self, dep_id: str, reason: str) -> None:
        """A replica cannot be kept running: the deployment fails, its replicas stop."""
        with self._lock:
            pool = self._pools.pop(dep_id, None)
            if pool is None:
                return  # stopped meanwhile
            pool.stopped.set()
        self._kill(pool.replicas)  # before the status says so: "failed" means nothing of it runs
        self.note(dep_id, f"deployment failed: {reason}")
        self._set(dep_id, "failed")
        log.warning("model deployment failed %s", KV(deployment=dep_id, reason=reason))

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
        procs = [r.proc for r in replicas if r.proc is not None]
        for proc in procs:
            if proc.poll() is None:
                kill_group(proc, 15)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for proc in procs:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                kill_group(proc)
                proc.wait()

    def _take_pool(self, dep_id: str) -> ReplicaPool | None:
        """Remove a deployment's pool from service (under the lock); its supervisors end."""
        pool = self._pools.pop(dep_id, None)
        if pool is not None:
            pool.stopped.set()
        return pool

    def stop(self, dep_id: str) -> dict:
        """Stop a deployment: no new requests reach it, its replicas end, status ``stopped``."""
        with self._lock:
            dep = self.state.get("deployment", dep_id)
            if dep["status"] in ("pending", "deploying"):
                self._cancelled.add(dep_id)
                return self._set(dep_id, "stopping")
            pool = self._take_pool(dep_id)
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
            pool = self._take_pool(dep_id)
            self._set(dep_id, "pending")
        if pool is not None:
            self._kill(pool.replicas)
        self.start(dep_id)
        return self.state.get("deployment", dep_id)

    def stop_all(self) -> None:
        """End every replica process (statuses stay: a restarted daemon resumes deployed models)."""
        with self._lock:
            self._closed = True
            pools = [self._take_pool(dep_id) for dep_id in list(self._pools)]
            starting = [r for reps in self._starting.values() for r in reps]
        self._kill([r for p in pools if p is not None for r in p.replicas] + starting)

    # -- after a restart of the daemon --------------------------------------------------------
    def recover(self, table: ProcessTable) -> None:
        """Take over what a previous daemon left (see ``localcml.models.recovery``)."""
        recover_deployments(self, table)

    def serve(self, dep: dict, replicas: list[Replica]) -> None:
        """Put a deployed deployment's replicas (some perhaps dead) into service, supervised."""
        with self._lock:
            pool = self._pools[dep["id"]] = ReplicaPool(dep["id"], replicas)
            self._live[dep["model_id"]] = dep["id"]
        self.supervisor.watch(dep["id"], pool)

    def set_status(self, dep_id: str, status: str) -> dict:
        """Record a deployment's status (and when it changed)."""
        return self._set(dep_id, status)
