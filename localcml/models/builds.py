"""Model builds: a snapshot of the project files, then a check that the model function imports.

A build is ``pending`` when created, ``building`` while its check runs, then ``built`` or
``build failed`` (``timedout`` if the check hangs). The snapshot in ``W/builds/<build_id>/`` is
what the build's deployments serve, like the image CML builds from the project files; it is
copied to a hidden directory first and renamed into place, so a daemon killed while copying
leaves no half snapshot. A restarted daemon kills a build check the previous one left running
and checks the build again.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cmlbase.logs import KV
from localcml.core.process_table import ProcessTable
from localcml.core.processes import kill_group, marker, spawn
from localcml.core.state import ApiState
from localcml.environment import process_env
from localcml.faults import FaultPlan
from localcml.projects.files import DEFAULT_MAX_BYTES, SnapshotTooLarge, snapshot

log = logging.getLogger(__name__)

BUILD_TIMEOUT_SECONDS = 600.0
#: ``observe(step, run_id, publish)``: makes a step of a job run's work visible (see ``JobRunner.observe``).
Observer = Callable[[str, "str | None", Callable[[], Any]], Any]


def publish_now(step: str, run_id: str | None, publish: Callable[[], Any]) -> Any:
    """The observer of a workspace without job runs: just publish."""
    return publish()


ACTIVE = ("pending", "building")


class Builder:
    """Snapshots the project for a build and checks it in a subprocess.

    Args:
        state: the API state.
        workspace_dir: W (snapshots in ``W/builds/<id>/``, logs in ``W/builds/<id>.log``).
        project_dir: the directory of a project (what its builds snapshot).
        engine_env: the CML engine variables of a project's engines, for code in a given directory.
        timeout: seconds the build check may take.
        faults: the workspace's fault plan (fault point ``build``: ``fail``).
        observe: called to publish ``built`` (step ``after_build`` of the run that made the build).
        max_bytes: the most a build may copy of the project (see ``localcml.projects.files``).
    """

    def __init__(
        self,
        state: ApiState,
        workspace_dir: Path,
        project_dir: Callable[[str], Path],
        engine_env: Callable[[str | None, Path], dict[str, str]],
        timeout: float = BUILD_TIMEOUT_SECONDS,
        faults: FaultPlan | None = None,
        observe: Observer = publish_now,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ):
        self.state = state
        self.max_bytes = max_bytes
        self.faults = faults
        self.observe = observe
        self.builds_dir = Path(workspace_dir) / "builds"
        self.workspace_dir = Path(workspace_dir)
        self.project_dir = project_dir
        self.engine_env = engine_env
        self.timeout = timeout
        self._lock = threading.Lock()
        self._checks: dict[str, subprocess.Popen] = {}
        self._closed = False

    def snapshot_dir(self, build_id: str) -> Path:
        return self.builds_dir / build_id

    def start(self, build: dict, project_id: str, fill: Callable[[Path], None] | None = None) -> None:
        """Snapshot the project's files now (or let ``fill`` write the snapshot), then check the build.

        A project over the size cap copies nothing: the build fails at once, its log naming the
        largest paths. ``fill(directory)`` writes a build that is not the project's files (a
        registered model version's MLflow model and its serving file).
        """
        self.builds_dir.mkdir(parents=True, exist_ok=True)
        partial = self.builds_dir / f".{build['id']}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            if fill is not None:
                partial.mkdir()
                fill(partial)
            else:
                snapshot(self.project_dir(project_id), partial, skip=(self.workspace_dir,), max_bytes=self.max_bytes)
        except SnapshotTooLarge as exc:
            self._set(build["id"], self._note(build["id"], f"build failed: {exc}", "build failed"))
            log.warning("model build not started %s", KV(build=build["id"], reason=exc))
            return
        os.replace(partial, self.snapshot_dir(build["id"]))
        self._spawn(build["id"])

    def forget(self, build_id: str) -> None:
        """Remove a deleted build's snapshot and log."""
        shutil.rmtree(self.snapshot_dir(build_id), ignore_errors=True)
        (self.builds_dir / f"{build_id}.log").unlink(missing_ok=True)

    def _spawn(self, build_id: str) -> None:
        threading.Thread(target=self._check, args=(build_id,), daemon=True, name=f"build-{build_id}").start()

    def _set(self, build_id: str, status: str) -> dict:
        def change(build: dict) -> None:
            build["status"] = status
            build["updated_at"] = self.state.now()
            if status == "built":
                build["built_at"] = build["updated_at"]

        return self.state.update("build", build_id, change)

    def _check(self, build_id: str) -> None:
        build = self._set(build_id, "building")
        code_dir = self.snapshot_dir(build_id)
        argv = [sys.executable, "-m", "localcml.models.runtime", "check", build["file_path"], build["function_name"]]
        env = process_env(
            self.engine_env(build.get("_project_id"), code_dir),
            {"PYTHONDONTWRITEBYTECODE": "1"},  # keep the snapshot as copied
            marker(self.workspace_dir, f"build:{build_id}"),
        )
        log_path = self.builds_dir / f"{build_id}.log"
        fault = self.faults.take("build") if self.faults is not None else None
        if fault is not None:
            status = self._note(build_id, "build failed: the build step failed (fault injected)", "build failed")
        else:
            try:
                with self._lock:
                    if self._closed:
                        return  # the workspace is stopping: the next daemon checks this build
                    proc = self._checks[build_id] = spawn(argv, cwd=code_dir, env=env, log_path=log_path)
            except OSError as exc:
                status = self._note(build_id, f"build check could not start: {exc}", "build failed")
            else:
                try:
                    status = "built" if proc.wait(timeout=self.timeout) == 0 else "build failed"
                except subprocess.TimeoutExpired:
                    kill_group(proc)
                    proc.wait()
                    status = self._note(build_id, f"build check did not finish in {self.timeout} s", "timedout")
                with self._lock:
                    self._checks.pop(build_id, None)
                    if self._closed:
                        return  # killed by the workspace's stop, not by its code: checked again next time
        if status == "built":
            self.observe("after_build", build.get("_run_id"), lambda: self._set(build_id, status))
        else:
            self._set(build_id, status)
        log.info("model build finished %s", KV(build=build_id, status=status))

    def _note(self, build_id: str, text: str, status: str) -> str:
        """Append a line to the build's log; returns ``status``."""
        with open(self.builds_dir / f"{build_id}.log", "a") as out:
            out.write(text + "\n")
        return status

    def busy(self) -> bool:
        """Whether a build is being checked."""
        return any(b["status"] in ACTIVE for b in self.state.list("build"))

    def stop_all(self) -> None:
        """Kill every build check (statuses stay: a restarted daemon checks those builds again)."""
        with self._lock:
            self._closed = True
            checks = list(self._checks.values())
        for proc in checks:
            kill_group(proc)
            proc.wait()

    def recover(self, table: ProcessTable) -> None:
        """Builds a previous daemon left unfinished are checked again (or fail without a snapshot).

        A check the previous daemon left running is killed first: its result had no one to read it.
        """
        for partial in self.builds_dir.glob(".*.partial"):  # a copy the previous daemon did not finish
            shutil.rmtree(partial, ignore_errors=True)
        for build in self.state.list("build"):
            if build["status"] in ACTIVE:
                if table.kill(f"build:{build['id']}"):
                    self._note(build["id"], "the workspace daemon restarted during this check; checking again", "")
                if self.snapshot_dir(build["id"]).is_dir():
                    self._spawn(build["id"])
                else:
                    self.builds_dir.mkdir(parents=True, exist_ok=True)
                    self._note(build["id"], "build failed: the workspace stopped before the snapshot was taken", "")
                    self._set(build["id"], "build failed")
