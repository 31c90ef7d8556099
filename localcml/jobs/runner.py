"""Job runs as real subprocesses: statuses, one active run per job, timeouts, stops, dependents.

A run goes ENGINE_SCHEDULING -> ENGINE_STARTING -> ENGINE_RUNNING -> ENGINE_SUCCEEDED |
ENGINE_FAILED | ENGINE_TIMEDOUT | ENGINE_STOPPED. Its engine is ``python -m
localcml.jobs.engine SCRIPT ARGS...`` in the project root with stdout and stderr in
``W/runs/<run_id>.log``. When a run succeeds, each job whose ``parent_id`` is this job starts.
Each run's engine gets its own API v2 key (``CDSW_APIV2_KEY``), so the workspace knows which
run made a build or a deployment. The fault point ``job.<script stem>`` (``kill:<step>``) is a
rehearsal of a crash: the workspace SIGKILLs the run's engine process group at the moment it
observes the step in that run's work (``after_build``: a build the run created becomes
``built``; ``after_deploy``: a deployment it created becomes ``deployed``), before the run can
see it. The run's code needs no hook for this.
"""

from __future__ import annotations

import json
import logging
import secrets
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from localcml.core.errors import ApiError
from localcml.core.processes import kill_group
from localcml.core.state import ApiState, public, public_id
from localcml.environment import process_env
from localcml.faults import FaultPlan
from localcml.jobs import exceptions
from localcml.runtimes.catalogue import engine_variables
from monitoring.core.logs import KV, register_secret

log = logging.getLogger(__name__)

TERMINAL = frozenset({"ENGINE_SUCCEEDED", "ENGINE_FAILED", "ENGINE_TIMEDOUT", "ENGINE_STOPPED", "ENGINE_SKIPPED"})
STOP_GRACE_SECONDS = 5.0
_STAMP = {"ENGINE_STARTING": "starting_at", "ENGINE_RUNNING": "running_at"}
T = TypeVar("T")


class JobRunner:
    """Starts and supervises job runs.

    Args:
        state: the API state.
        project_dir: the directory of a project (a run's working directory).
        workspace_dir: W (run logs go to ``W/runs/``).
        engine_env: the CML engine variables of a project's engines (without job/run environment).
        user: the ShortUser recorded as each run's creator.
        faults: the workspace's fault plan.
    """

    def __init__(
        self,
        state: ApiState,
        project_dir: Callable[[str], Path],
        workspace_dir: Path,
        engine_env: Callable[[str], dict[str, str]],
        user: dict,
        faults: FaultPlan | None = None,
    ):
        self.state = state
        self.faults = faults
        self.project_dir = project_dir
        self.runs_dir = Path(workspace_dir) / "runs"
        self.engine_env = engine_env
        self.user = user
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._stopping: set[str] = set()
        self._threads: dict[str, threading.Thread] = {}
        self._keys: dict[str, str] = {}
        self._closed = False

    # -- starting ----------------------------------------------------------------------------
    def start(self, job: dict, environment: dict[str, str] | None = None, arguments: str | None = None) -> dict:
        """Create a run of ``job`` and start supervising it.

        Raises:
            ApiError: FAILED_PRECONDITION when the job already has an active run.
        """
        with self._lock:
            if self._closed:
                raise exceptions.shutting_down()
            active = [r for r in self.state.list("run", job["id"]) if r["status"] not in TERMINAL]
            if active:
                raise exceptions.active_run(job, active[0])
            now = self.state.now()
            job_env = json.loads(job.get("environment") or "{}")
            fault = self.faults.take(f"job.{Path(job['script']).stem}") if self.faults is not None else None
            key = secrets.token_hex(24)
            register_secret(key)
            run = {
                "id": public_id(),
                "project_id": job["project"]["public_identifier"],
                "job_id": job["id"],
                "status": "ENGINE_SCHEDULING",
                "created_at": now,
                "scheduling_at": now,
                "kernel": job.get("kernel", ""),
                "cpu": job.get("cpu", 1),
                "memory": job.get("memory", 1),
                "nvidia_gpu": job.get("nvidia_gpu", 0),
                "arguments": job.get("arguments", "") if arguments is None else arguments,
                "environment": json.dumps(environment or {}),
                "creator": self.user,
                "runtime_identifier": job.get("runtime_identifier", ""),
                "resource_group_id": 0,
                "_job": {
                    "name": job["name"],
                    "script": job["script"],
                    "timeout": int(job.get("timeout") or 0),
                    "environment": {**job_env, **(environment or {})},
                },
                "_api_key": key,
                "_kill_at": fault.step if fault is not None else None,
                "_fault": fault.spec() if fault is not None else None,
            }
            self.state.insert("run", job["id"], run)
            self._keys[key] = run["id"]
            thread = threading.Thread(target=self._supervise, args=(run["id"],), daemon=True, name=f"run-{run['id']}")
            self._threads[run["id"]] = thread
        log.info("job run created %s", KV(job=job["name"], run=run["id"]))
        thread.start()
        return public(run)

    def _set(self, run_id: str, status: str) -> dict:
        def change(run: dict) -> None:
            run["status"] = status
            if status in _STAMP:
                run[_STAMP[status]] = self.state.now()
            if status in TERMINAL:
                run["finished_at"] = self.state.now()

        return self.state.update("run", run_id, change)

    # -- supervising ---------------------------------------------------------------------------
    def _supervise(self, run_id: str) -> None:
        try:
            status = self._execute(run_id)
        except Exception:
            log.exception("job run %s: supervisor failed", run_id)
            status = "ENGINE_FAILED"
        with self._lock:
            self._procs.pop(run_id, None)
            self._keys = {k: r for k, r in self._keys.items() if r != run_id}  # the key dies with its engine
            if run_id in self._stopping:
                status = "ENGINE_STOPPED"
            run = self._set(run_id, status)
            log.info("job run finished %s", KV(job=run["_job"]["name"], run=run_id, status=status))
            if status == "ENGINE_SUCCEEDED":  # under the lock: the workspace is never seen idle in between
                self._start_dependents(run["job_id"], run["project_id"])

    def _execute(self, run_id: str) -> str:
        run = self._set(run_id, "ENGINE_STARTING")
        spec = run["_job"]
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "localcml.jobs.engine", spec["script"], *shlex.split(run["arguments"] or "")]
        engine = {
            **engine_variables(run.get("runtime_identifier"), self.state),
            "CDSW_ENGINE_ID": public_id().replace("-", ""),
            "CDSW_APIV2_KEY": run["_api_key"],
        }
        env = process_env(self.engine_env(run["project_id"]), engine, spec["environment"])
        cwd = self.project_dir(run["project_id"])
        with open(self.runs_dir / f"{run_id}.log", "ab") as out:
            with self._lock:
                if run_id in self._stopping or self._closed:
                    return "ENGINE_STOPPED"
                try:
                    proc = subprocess.Popen(
                        argv,
                        cwd=cwd,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                except OSError as exc:
                    out.write(f"Engine error: cannot start {argv!r} in {cwd}: {exc}\n".encode())
                    return "ENGINE_FAILED"
                self._procs[run_id] = proc
                self._set(run_id, "ENGINE_RUNNING")
            try:
                code = proc.wait(timeout=spec["timeout"] or None)
            except subprocess.TimeoutExpired:
                kill_group(proc)
                proc.wait()
                out.write(f"\nEngine timed out after {spec['timeout']} s (job timeout) and was killed\n".encode())
                return "ENGINE_TIMEDOUT"
            if code < 0:  # killed by a signal: say so where on-call reads (the run log has no verdict)
                name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
                out.write(f"\nEngine was killed by signal {name}; the run did not finish\n".encode())
        return "ENGINE_SUCCEEDED" if code == 0 else "ENGINE_FAILED"

    def _start_dependents(self, job_id: str, project_id: str) -> None:
        for child in self.state.list("job", project_id):
            if child.get("parent_id") != job_id:
                continue
            try:
                self.start(child)
            except ApiError as exc:
                log.warning("dependent job not started %s", KV(job=child["name"], reason=exc.message))

    # -- engines' identity and rehearsed crashes ---------------------------------------------
    def caller(self, api_key: str) -> str | None:
        """The run whose engine holds ``api_key`` (None: not an engine key)."""
        return self._keys.get(api_key)

    def observe(self, step: str, run_id: str | None, publish: Callable[[], T]) -> T:
        """Publish a step of a run's work (``publish()`` makes it visible), killing the run first if planned.

        A run started under the fault ``job.<name>=kill:<step>`` has its engine process group
        SIGKILLed here, before the step becomes visible through the API: the run dies at the
        moment the workspace observes the step, as an engine killed by the platform would.

        Args:
            step: ``after_build`` or ``after_deploy``.
            run_id: the run that created the object (None: not made by a job run).
            publish: makes the step visible (e.g. sets the build's status to ``built``).

        Returns:
            What ``publish`` returns.
        """
        with self._lock:  # the run's final status is recorded under this lock too: after publish
            run = self.state.get("run", run_id) if run_id else None
            if run is not None and run.get("_kill_at") == step and run["status"] not in TERMINAL:
                self._kill_for_fault(run, step)
            return publish()

    def _kill_for_fault(self, run: dict, step: str) -> None:
        self.state.update("run", run["id"], lambda r: r.update(_kill_at=None))
        with open(self.runs_dir / f"{run['id']}.log", "a") as out:
            out.write(
                f"local workspace: killing this run with SIGKILL step={step} (fault {run['_fault']}: "
                "a rehearsed crash of the engine)\n"
            )
        log.warning("job run killed %s", KV(run=run["id"], step=step, reason="fault injected"))
        proc = self._procs.get(run["id"])
        if proc is not None:
            kill_group(proc)

    # -- stopping ----------------------------------------------------------------------------
    def stop(self, run_id: str) -> dict:
        """Stop an active run (its status becomes ENGINE_STOPPING, then ENGINE_STOPPED).

        Raises:
            ApiError: FAILED_PRECONDITION when the run has already finished.
        """
        with self._lock:
            run = self.state.get("run", run_id)
            if run is None or run["status"] in TERMINAL:
                raise exceptions.not_active(run_id, run and run["status"])
            self._stopping.add(run_id)
            run = self.state.update("run", run_id, lambda r: r.update(status="ENGINE_STOPPING"))
            proc = self._procs.get(run_id)
        if proc is not None:
            kill_group(proc, signal.SIGTERM)
            timer = threading.Timer(STOP_GRACE_SECONDS, kill_group, args=(proc,))
            timer.daemon = True
            timer.start()
        return public(run)

    def busy(self) -> bool:
        """Whether any run is active (a dependent about to start counts: see ``_supervise``)."""
        with self._lock:
            return any(r["status"] not in TERMINAL for r in self.state.list("run"))

    def stop_project(self, project_id: str) -> None:
        """Stop every active run of a project (it is being deleted)."""
        for run in self.state.list("run"):
            if run["project_id"] == project_id and run["status"] not in TERMINAL:
                try:
                    self.stop(run["id"])
                except ApiError:
                    pass  # it finished meanwhile

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every active run and wait (bounded) for their supervisors to record it."""
        with self._lock:
            self._closed = True
            self._stopping.update(self._threads)
            procs = list(self._procs.values())
            threads = list(self._threads.values())
        for proc in procs:
            kill_group(proc)
        for thread in threads:
            thread.join(timeout)

    def recover(self) -> None:
        """Runs left active by a previous daemon that died are recorded as stopped."""
        for run in self.state.list("run"):
            if run["status"] not in TERMINAL:
                self._set(run["id"], "ENGINE_STOPPED")
