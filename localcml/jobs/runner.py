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

Engines outlive the daemon, as CML engines outlive a restart of CML's API server. A restarted
daemon (``recover``) adopts the engine of each run still active: it follows it to its end and
records its real exit status (the engine writes it to ``W/runs/<run_id>.exit``) and a line in
its log, so a job never has two engines at once. A run whose engine ended while no daemon
watched is recorded from that exit file; one whose engine never started is started now.
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
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from cmlbase.logs import KV, register_secret
from localcml.core.errors import ApiError
from localcml.core.process_table import ProcessTable
from localcml.core.processes import (
    EXIT_FILE_ENV,
    EXIT_UNKNOWN,
    Adopted,
    describe_exit,
    kill_group,
    marker,
    read_exit,
    spawn,
    write_exit,
)
from localcml.core.state import ApiState, public, public_id
from localcml.environment import process_env
from localcml.faults import FaultPlan
from localcml.jobs import exceptions
from localcml.runtimes.catalogue import engine_variables

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
        self.workspace_dir = Path(workspace_dir)
        self.runs_dir = self.workspace_dir / "runs"
        self.engine_env = engine_env
        self.user = user
        self._lock = threading.RLock()
        self._procs: dict[str, subprocess.Popen | Adopted] = {}
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
            thread = self._follow(run["id"], self._execute)
        log.info("job run created %s", KV(job=job["name"], run=run["id"]))
        thread.start()
        return public(run)

    def _follow(self, run_id: str, work: Callable[[str], str]) -> threading.Thread:
        """A supervisor thread (not started) that records the status ``work(run_id)`` returns."""
        thread = threading.Thread(target=self._supervise, args=(run_id, work), daemon=True, name=f"run-{run_id}")
        self._threads[run_id] = thread
        return thread

    def _set(self, run_id: str, status: str) -> dict:
        def change(run: dict) -> None:
            run["status"] = status
            if status in _STAMP:
                run[_STAMP[status]] = self.state.now()
            if status in TERMINAL:
                run["finished_at"] = self.state.now()

        return self.state.update("run", run_id, change)

    # -- supervising ---------------------------------------------------------------------------
    def _supervise(self, run_id: str, work: Callable[[str], str]) -> None:
        try:
            status = work(run_id)
        except Exception:
            log.exception("job run %s: supervisor failed", run_id)
            status = "ENGINE_FAILED"
        with self._lock:
            self._procs.pop(run_id, None)
            self._keys = {k: r for k, r in self._keys.items() if r != run_id}  # the key dies with its engine
            if run_id in self._stopping:
                status = "ENGINE_STOPPED"
            self._finish(run_id, status)

    def _finish(self, run_id: str, status: str) -> None:
        """Record a run's final status (under the lock) and start its dependents if it succeeded."""
        run = self._set(run_id, status)
        log.info("job run finished %s", KV(job=run["_job"]["name"], run=run_id, status=status))
        if status == "ENGINE_SUCCEEDED":  # under the lock: the workspace is never seen idle in between
            self._start_dependents(run["job_id"], run["project_id"])

    def exit_file(self, run_id: str) -> Path:
        """Where a run's engine writes its exit record."""
        return self.runs_dir / f"{run_id}.exit"

    def note(self, run_id: str, text: str) -> None:
        """Append a line of the workspace's own to a run's log (where on-call reads what happened)."""
        note_run(self.workspace_dir, run_id, text)

    def _execute(self, run_id: str) -> str:
        run = self._set(run_id, "ENGINE_STARTING")
        spec = run["_job"]
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "localcml.jobs.engine", spec["script"], *shlex.split(run["arguments"] or "")]
        engine = {
            **engine_variables(run.get("runtime_identifier"), self.state),
            "CDSW_ENGINE_ID": public_id().replace("-", ""),
            "CDSW_APIV2_KEY": run["_api_key"],
            "MLFLOW_TRACKING_TOKEN": run["_api_key"],
        }
        own = {**marker(self.workspace_dir, f"run:{run_id}"), EXIT_FILE_ENV: str(self.exit_file(run_id))}
        env = process_env(self.engine_env(run["project_id"]), engine, spec["environment"], own)
        cwd = self.project_dir(run["project_id"])
        with self._lock:
            if run_id in self._stopping or self._closed:
                return "ENGINE_STOPPED"
            try:
                proc = spawn(argv, cwd=cwd, env=env, log_path=self.runs_dir / f"{run_id}.log")
            except OSError as exc:
                self.note(run_id, f"Engine error: cannot start {argv!r} in {cwd}: {exc}")
                return "ENGINE_FAILED"
            self._procs[run_id] = proc
            deadline = time.monotonic() + spec["timeout"] if spec["timeout"] else None

            def running(r: dict) -> None:
                r.update(status="ENGINE_RUNNING", running_at=self.state.now(), _pid=proc.pid, _deadline=deadline)

            self.state.update("run", run_id, running)
        return self._await(run_id, proc, deadline)

    def _await(self, run_id: str, proc: subprocess.Popen | Adopted, deadline: float | None) -> str:
        """Wait for a run's engine to end (killing it at the job's timeout); returns the run's status.

        ``deadline`` is on ``time.monotonic()``, which counts from boot on Linux, so it holds
        for an engine adopted by a restarted daemon too.
        """
        try:
            code = proc.wait(timeout=None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            kill_group(proc)
            proc.wait()
            timeout = self.state.get("run", run_id)["_job"]["timeout"]
            self.note(run_id, f"Engine timed out after {timeout} s (job timeout) and was killed")
            return "ENGINE_TIMEDOUT"
        if code == EXIT_UNKNOWN:  # the run log has no verdict: say what happened
            self.note(run_id, f"Engine ended with {describe_exit(code)}; the run did not finish")
        elif code < 0:
            self.note(run_id, f"Engine was killed by {describe_exit(code)}; the run did not finish")
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

    def recover(self, table: ProcessTable) -> None:
        """Take over the runs a previous daemon left active (it died or was killed).

        An engine still running is adopted: followed to its end, its real exit status and a
        line in its log recorded. An engine that ended meanwhile is recorded from its exit file
        (failed, with the reason in its log, when it left none). A run whose engine never
        started starts now. A run being stopped is stopped. Nothing else of a previous daemon's
        runs keeps running (``table``'s unclaimed processes are killed by the workspace).
        """
        for run in self.state.list("run"):
            if run["status"] in TERMINAL:
                continue
            role = f"run:{run['id']}"
            if run["status"] == "ENGINE_STOPPING":
                table.kill(role)
                self.note(run["id"], "local workspace: the daemon restarted while this run was being stopped")
                self._set(run["id"], "ENGINE_STOPPED")
                continue
            engine = table.claim(role)
            if engine is not None:
                self._adopt(run, engine.pid)
            else:
                self._settle(run)

    def _adopt(self, run: dict, pid: int) -> None:
        try:
            engine = Adopted(pid, self.exit_file(run["id"]))
        except ProcessLookupError:  # it ended between the scan and now
            return self._settle(run)
        with self._lock:
            self._procs[run["id"]] = engine
            self._keys[run["_api_key"]] = run["id"]
            register_secret(run["_api_key"])
            if run["status"] != "ENGINE_RUNNING":
                self.state.update("run", run["id"], lambda r: r.update(status="ENGINE_RUNNING", _pid=pid))
            thread = self._follow(run["id"], lambda run_id: self._await(run_id, engine, run.get("_deadline")))
        self.note(
            run["id"],
            f"local workspace: the workspace daemon restarted; this run's engine (pid {pid}) kept running "
            "and is followed to its end",
        )
        log.info("job run adopted %s", KV(run=run["id"], pid=pid))
        thread.start()

    def _settle(self, run: dict) -> None:
        """A run whose engine is not running: record how it ended, or start it if it never started."""
        run_id = run["id"]
        record = read_exit(self.exit_file(run_id))
        log_file = self.runs_dir / f"{run_id}.log"
        started = run["status"] == "ENGINE_RUNNING" or (log_file.is_file() and log_file.stat().st_size > 0)
        with self._lock:
            if record is not None and "stopped" in record:
                self._finish(run_id, "ENGINE_STOPPED")
            elif record is not None and isinstance(record.get("code"), int):
                code = record["code"]
                self.note(run_id, f"local workspace: the engine ended with exit code {code} while no daemon watched it")
                self._finish(run_id, "ENGINE_SUCCEEDED" if code == 0 else "ENGINE_FAILED")
            elif started:
                self.note(
                    run_id,
                    f"local workspace: the engine ended with {describe_exit(EXIT_UNKNOWN)} while no daemon "
                    "watched it; the run is marked failed",
                )
                self._finish(run_id, "ENGINE_FAILED")
            else:
                self.note(run_id, "local workspace: the daemon restarted before this run's engine started; starting it")
                self._keys[run["_api_key"]] = run_id
                register_secret(run["_api_key"])
                thread = self._follow(run_id, self._execute)
                thread.start()


def note_run(workspace_dir: str | Path, run_id: str, text: str) -> None:
    """Append a line of the workspace's own to the log of run ``run_id`` in W."""
    runs = Path(workspace_dir) / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    with open(runs / f"{run_id}.log", "a") as out:
        out.write(f"\n{text}\n")


def stopped_without_daemon(workspace_dir: str | Path, run_id: str, why: str) -> None:
    """Record that a run's engine was stopped while no daemon ran (``local down`` after a crash)."""
    note_run(workspace_dir, run_id, f"local workspace: {why}")
    write_exit(Path(workspace_dir) / "runs" / f"{run_id}.exit", {"stopped": why})
