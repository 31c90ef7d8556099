"""`make`'s system step: as a non-root user it installs nothing and prints the one command to run."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "system-packages.sh"
TOOLS = ("bash", "env", "id", "getent", "sort", "ls", "printf", "cat", "true", "false")


def bare_path(tmp_path: Path) -> str:
    """A PATH with the shell tools the script uses, and no chromium, initdb or apt-get."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in TOOLS:
        found = shutil.which(tool)
        assert found, tool
        (bin_dir / tool).symlink_to(found)
    return str(bin_dir)


def run_as(user: str, *args: str, python_has_venv: bool) -> subprocess.CompletedProcess:
    """The script as ``user``; ``python_has_venv`` stands in for the interpreter's venv check."""
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.fail("this test runs as root (as CI does) to switch to an unprivileged user with runuser")
    with tempfile.TemporaryDirectory() as tmp:  # outside pytest's root-only tmp tree
        Path(tmp).chmod(0o755)
        env = {"PATH": bare_path(Path(tmp)), "PYTHON": "true" if python_has_venv else "false"}
        return subprocess.run(
            ["runuser", "-u", user, "--", "env", *[f"{k}={v}" for k, v in env.items()], "bash", str(SCRIPT), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )


def test_as_a_user_it_names_what_is_missing_and_the_one_command_to_run():
    out = run_as("nobody", "all", python_has_venv=True)
    assert out.returncode == 1
    assert "missing system packages:" in out.stderr and "chromium" in out.stderr
    command = [ln.strip() for ln in out.stderr.splitlines() if ln.strip().startswith("sudo ")]
    assert len(command) == 1
    assert command[0].startswith("sudo sh -c 'apt-get update && apt-get install -y --no-install-recommends ")
    assert "chromium" in command[0]


def test_the_venv_step_asks_only_for_what_a_virtualenv_needs():
    assert run_as("nobody", "venv", python_has_venv=True).returncode == 0
    out = run_as("nobody", "venv", python_has_venv=False)
    assert out.returncode == 1
    assert "--no-install-recommends python3-venv'" in out.stderr  # and nothing else: no chromium, no server
