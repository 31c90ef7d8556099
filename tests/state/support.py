"""Helpers for the state-store tests: throwaway projects, a real lock holder, job runs as real processes."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from monitoring.config.pipeline import PipelineConfig, load_config
from tests.project import REPO, make_project

HERE = Path(__file__).resolve().parent
JOB_SCRIPTS = ("simulate_traffic", "compute_accuracy", "evaluate_thresholds", "redeploy")
#: Seconds a job process may take to refuse (imports included, on a busy machine).
JOB_TIMEOUT_S = 240


def project(root: Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """A project directory with the repo's jobs and library and a config with ``overrides``."""
    root.mkdir(parents=True, exist_ok=True)
    return load_config(make_project(root, overrides))


@contextlib.contextmanager
def lock_held(url: str, table: str = "decisions") -> Iterator[subprocess.Popen]:
    """Another process holds a write lock on the store until the block ends.

    SQLite: ``BEGIN IMMEDIATE`` on the file (every writer waits). PostgreSQL: ``LOCK TABLE`` in
    EXCLUSIVE mode on ``table`` (readers pass, writers wait).
    """
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "lock_worker.py"), url, table],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        with contextlib.suppress(BrokenPipeError):
            proc.communicate("release\n", timeout=30)


def run_jobs(
    root: Path, jobs: tuple[str, ...] = JOB_SCRIPTS, env: dict[str, str] | None = None
) -> dict[str, tuple[int, str]]:
    """Start each job script as its own process at once (as CML engines would); wait for all.

    Returns:
        ``{job: (exit code, output)}``.
    """
    environ = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    procs = {
        job: subprocess.Popen(
            [sys.executable, f"jobs/{job}.py", "--project-root", str(root), "-f", "ignored"],
            cwd=root,
            env=environ,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for job in jobs
    }
    outputs = {job: p.communicate(timeout=JOB_TIMEOUT_S)[0] for job, p in procs.items()}
    return {job: (procs[job].returncode, out) for job, out in outputs.items()}


def verdict(output: str) -> str:
    """The run's last VERDICT line (fails the test when there is none)."""
    lines = [ln for ln in output.splitlines() if "VERDICT " in ln]
    assert lines, f"no VERDICT line in:\n{output[-3000:]}"
    return lines[-1]


def one_verdict(results: dict[str, tuple[int, str]], code: int) -> str:
    """The one VERDICT line every job of ``run_jobs`` ended with, having exited ``code`` (the job name aside)."""
    lines = {job: verdict(out) for job, (_, out) in results.items()}
    assert {job: exit_code for job, (exit_code, _) in results.items()} == dict.fromkeys(results, code), lines
    bodies = {re.sub(r"job=\S+ ", "", line.split("VERDICT ", 1)[1]) for line in lines.values()}
    assert len(bodies) == 1, bodies  # the same line, whichever job met it
    return next(iter(lines.values()))


@contextlib.contextmanager
def small_file_system(where: Path, size: str = "1m") -> Iterator[Path]:
    """A real tmpfs of ``size`` mounted at ``where`` for the block (root only; skips with the reason otherwise)."""
    import pytest

    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path, leave_bytes: int) -> Path:
    """Fill the file system of ``path`` with one file until about ``leave_bytes`` are free; returns the filler."""
    import shutil

    filler = path / "filler"
    free = shutil.disk_usage(path).free
    with open(filler, "wb") as f:
        f.write(b"\0" * max(0, free - leave_bytes))
    return filler
