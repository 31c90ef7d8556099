"""Job runs as real subprocesses: statuses, one active run per job, timeouts, stops, dependents.

A run goes ENGINE_SCHEDULING -> ENGINE_STARTING -> ENGINE_RUNNING -> ENGINE_SUCCEEDED |
ENGINE_FAILED | ENGINE_TIMEDOUT | ENGINE_STOPPED. Its engine is ``python -m
localcml.engine SCRIPT ARGS...`` in the project root with stdout and stderr in
``W/runs/<run_id>.log``. When a run succeeds, each job whose ``parent_id`` is this job starts.
The fault point ``job.<script stem>`` (``kill:<step>``) makes a run's engine kill itself with
SIGKILL at that step of ``monitoring.workflows.release``.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from localcml.apierrors import ApiError, precondition
from localcml.apistate import ApiState, public, public_id
from localcml.environment import process_env
from localcml.faults import KILL_AT_ENV, FaultPlan
from monitoring.core.logs import KV

log = logging.getLogger(__name__)

TERMINAL = frozenset({"ENGINE_SUCCEEDED", "ENGINE_FAILED", "ENGINE_TIMEDOUT", "ENGINE_STOPPED", "ENGINE_SKIPPED"})
STOP_GRACE_SECONDS = 5.0
_STAMP = {"ENGINE_STARTING": "starting_at", "ENGINE_RUNNING": "running_at"}


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Signal the process group started for ``proc`` (engine and anything it spawned)."""
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class JobRunner:
    """Starts and supervises job runs.

    Args:
        state: the API state.
        project_root: working directory of every run.
        workspace_dir: W (run logs go to ``W/runs/``).
        engine_env: returns the CML engine variables for a run (without job/run environment).
        user: the ShortUser recorded as each run's creator.
        faults: the workspace's fault plan.
    """

    def __init__(
        self,
        state: ApiState,
        project_root: Path,
        workspace_dir: Path,
        engine_env: Callable[[], dict[str, str]],
        user: dict,
        faults: FaultPlan | None = None,
    ):
        self.state = state
        self.faults = faults
        self.project_root = Path(project_root)
        self.runs_dir = Path(workspace_dir) / "runs"
        self.engine_env = engine_env
        self.user = user
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen] = {}
        self._stopping: set[str] = set()
        self._threads: dict[str, threading.Thread] = {}
        self._closed = False

    # -- starting ----------------------------------------------------------------------------
    def start(self, job: dict, environment: dict[str, str] | None = None, arguments: str | None = None) -> dict:
        """Create a run of ``job`` and start supervising it.

        Raises:
            ApiError: FAILED_PRECONDITION when the job already has an active run.
        """
        with self._lock:
            if self._closed:
                raise precondition("the local workspace is shutting down; no new runs start")
            active = [r for r in self.state.list("run", job["id"]) if r["status"] not in TERMINAL]
            if active:
                raise precondition(
                    f"job {job['id']} ({job['name']!r}) already has an active run "
                    f"{active[0]['id']} ({active[0]['status']}); a job can have only one active run"
                )
            now = self.state.now()
            job_env = json.loads(job.get("environment") or "{}")
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
            }
            self.state.insert("run", job["id"], run)
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
            if run_id in self._stopping:
                status = "ENGINE_STOPPED"
            run = self._set(run_id, status)
        log.info("job run finished %s", KV(job=run["_job"]["name"], run=run_id, status=status))
        if status == "ENGINE_SUCCEEDED":
            self._start_dependents(run["job_id"], run["project_id"])

    def _execute(self, run_id: str) -> str:
        run = self._set(run_id, "ENGINE_STARTING")
        spec = run["_job"]
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "localcml.engine", spec["script"], *shlex.split(run["arguments"] or "")]
        env = process_env(self.engine_env(), {"CDSW_ENGINE_ID": public_id().replace("-", "")}, spec["environment"])
        fault = self.faults.take(f"job.{Path(spec['script']).stem}") if self.faults is not None else None
        if fault is not None:
            env[KILL_AT_ENV] = fault.step or ""
        with open(self.runs_dir / f"{run_id}.log", "ab") as out:
            with self._lock:
                if run_id in self._stopping or self._closed:
                    return "ENGINE_STOPPED"
                try:
                    proc = subprocess.Popen(
                        argv,
                        cwd=self.project_root,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        stdin=subprocess.DEVNULL,
                        start_new_session=True,
                    )
                except OSError as exc:
                    out.write(f"Engine error: cannot start {argv!r} in {self.project_root}: {exc}\n".encode())
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

    # -- stopping ----------------------------------------------------------------------------
    def stop(self, run_id: str) -> dict:
        """Stop an active run (its status becomes ENGINE_STOPPING, then ENGINE_STOPPED).

        Raises:
            ApiError: FAILED_PRECONDITION when the run has already finished.
        """
        with self._lock:
            run = self.state.get("run", run_id)
            if run is None or run["status"] in TERMINAL:
                raise precondition(f"job run {run_id} is not active (status {run and run['status']})")
            self._stopping.add(run_id)
            run = self.state.update("run", run_id, lambda r: r.update(status="ENGINE_STOPPING"))
            proc = self._procs.get(run_id)
        if proc is not None:
            kill_group(proc, signal.SIGTERM)
            timer = threading.Timer(STOP_GRACE_SECONDS, kill_group, args=(proc,))
            timer.daemon = True
            timer.start()
        return public(run)

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
