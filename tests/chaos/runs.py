"""Job scripts of a fault rig's project as real processes, as a CML engine starts them, run to their end or SIGKILLed."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

from monitoring.app.demo import verdict_fields
from monitoring.core.errors import (
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_DATA,
    EXIT_LOCKED,
    EXIT_NO_SPACE,
    EXIT_OK,
    EXIT_PLATFORM,
    EXIT_REDEPLOY_FAILED,
    EXIT_STORE,
)
from tests.chaos.processes import sigkill_group
from tests.faults.rig import Rig
from tests.waiting import wait_for

#: Seconds a job process may take (imports included, on a busy machine).
RUN_TIMEOUT_S = 240
#: The exit codes of the README's table that say what happened (1, "a bug", is not one of them).
DOCUMENTED = {
    EXIT_OK,
    EXIT_CONFIG,
    EXIT_PLATFORM,
    EXIT_DATA,
    EXIT_REDEPLOY_FAILED,
    EXIT_BUSY,
    EXIT_STORE,
    EXIT_NO_SPACE,
    EXIT_LOCKED,
}


@contextlib.contextmanager
def job_process(rig: Rig, job: str) -> Iterator[subprocess.Popen]:
    """``jobs/<job>.py`` as a real process in its own process group (killed if the block leaves it running)."""
    proc = subprocess.Popen(
        [sys.executable, f"jobs/{job}.py", "--project-root", str(rig.root), "-f", "x"],
        cwd=rig.root,
        env={**os.environ, **rig.ws.engine_env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            sigkill_group(proc.pid, f"a {job} run left behind")
        proc.communicate(timeout=RUN_TIMEOUT_S)


def run_to_end(rig: Rig, job: str) -> tuple[int, str]:
    """Run a job to its end; returns its exit code and output."""
    with job_process(rig, job) as proc:
        out = proc.communicate(timeout=RUN_TIMEOUT_S)[0]
    return proc.returncode, out


def kill_at(rig: Rig, job: str, moment: Callable[[int, float], bool], what: str) -> tuple[int | None, str]:
    """Start a job and SIGKILL it as soon as ``moment(its pid, seconds since it started)`` holds (a bounded poll).

    Returns:
        ``(None, "")`` when it was killed; ``(exit code, output)`` when it ended before the moment came.
    """
    with job_process(rig, job) as proc:
        started = time.monotonic()
        wait_for(lambda: proc.poll() is not None or moment(proc.pid, time.monotonic() - started), what, RUN_TIMEOUT_S)
        if proc.poll() is not None:
            return proc.returncode, proc.communicate(timeout=RUN_TIMEOUT_S)[0]
        sigkill_group(proc.pid, what)
    return None, ""


def assert_explained(code: int, out: str, context: str = "") -> dict[str, str]:
    """A run that ended by itself has a documented exit code and a VERDICT line that names it.

    Returns:
        The VERDICT's fields.
    """
    where = f"{context}: " if context else ""
    assert code in DOCUMENTED, f"{where}exit code {code} is not a documented one:\n{out[-3000:]}"
    fields = verdict_fields(out)
    assert fields, f"{where}no VERDICT line in:\n{out[-3000:]}"
    said = (fields.get("status"), fields.get("exit_code", "0"))
    assert said == ("ok" if code == EXIT_OK else "failed", str(code)), f"{where}VERDICT says {said}, exit code {code}"
    return fields
