"""Invariants read from the workspace's own store (``W/workspace.db``, read-only) and its logs."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path

TERMINAL = {"ENGINE_SUCCEEDED", "ENGINE_FAILED", "ENGINE_TIMEDOUT", "ENGINE_STOPPED", "ENGINE_SKIPPED"}


class WorkspaceStore:
    """The objects the workspace in W recorded (jobs, runs, builds, deployments, applications).

    Args:
        workspace_dir: W.
    """

    def __init__(self, workspace_dir: str | Path):
        self.workspace_dir = Path(workspace_dir)

    def objects(self, kind: str) -> list[dict]:
        """Every object of ``kind`` in creation order (with its private ``_`` fields)."""
        uri = f"file:{self.workspace_dir / 'workspace.db'}?mode=ro"
        with sqlite3.connect(uri, uri=True, timeout=10) as conn:
            rows = conn.execute("SELECT data FROM objects WHERE kind = ? ORDER BY seq", (kind,)).fetchall()
        conn.close()
        return [json.loads(row[0]) for row in rows]

    def runs(self, job_id: str | None = None) -> list[dict]:
        return [r for r in self.objects("run") if job_id is None or r["job_id"] == job_id]

    def active_runs(self) -> list[dict]:
        return [r for r in self.runs() if r["status"] not in TERMINAL]

    def deployments(self, model_id: str | None = None) -> list[dict]:
        return [d for d in self.objects("deployment") if model_id is None or d["model_id"] == model_id]

    def run_log(self, run_id: str) -> str:
        return (self.workspace_dir / "runs" / f"{run_id}.log").read_text()

    def deploy_log(self, dep_id: str) -> str:
        path = self.workspace_dir / "deployments" / dep_id / "deploy.log"
        return path.read_text() if path.is_file() else ""

    # -- invariants ------------------------------------------------------------------------
    def assert_one_active_run_per_job(self) -> None:
        counts = Counter(r["job_id"] for r in self.active_runs())
        assert all(n == 1 for n in counts.values()), f"jobs with more than one active run: {counts}"

    def assert_at_most_one_deployed_per_model(self) -> None:
        counts = Counter(d["model_id"] for d in self.deployments() if d["status"] == "deployed")
        assert all(n == 1 for n in counts.values()), f"models with more than one deployed deployment: {counts}"

    def last_line(self, run_id: str) -> str:
        """The last non-empty line of a run's log: what happened to it, for whoever reads it."""
        return [line for line in self.run_log(run_id).splitlines() if line.strip()][-1]
