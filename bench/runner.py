"""Run one step in a fresh Python process and return its result (peak RSS is then per step)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.child import RESULT_PREFIX

REPO = Path(__file__).resolve().parents[1]
#: Seconds one step may take before it is stopped (the 10M loads are the longest).
STEP_TIMEOUT_S = 3600
#: Variables of an activated local workspace that must not leak from the caller into a step.
_LOCAL_ENV = ("CML_MONITOR_", "CDSW_")


class StepError(RuntimeError):
    """A step failed or printed no result; the message holds the end of its stderr."""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_LOCAL_ENV)}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def run_step(step: str, params: dict, log_dir: Path, timeout: float = STEP_TIMEOUT_S) -> dict:
    """Run ``python -m bench.child STEP PARAMS`` and parse its result line.

    Args:
        step: a name in ``bench.child.STEPS``.
        params: JSON-able parameters of the step.
        log_dir: where the step's stderr is kept (``<step>-<n>.log``).
        timeout: seconds before the step is stopped.

    Returns:
        The step's result dict.

    Raises:
        StepError: non-zero exit, timeout or no result line (the stderr tail is included).
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{step}-{len(list(log_dir.glob(f'{step}-*.log')))}.log"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.child", step, json.dumps(params)],
            cwd=REPO,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StepError(f"step {step} did not finish within {timeout:g} s") from exc
    log_file.write_text(done.stderr)
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        raise StepError(f"step {step} failed (exit {done.returncode}); stderr in {log_file}:\n{tail}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])
