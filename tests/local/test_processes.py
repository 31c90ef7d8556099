"""Workspace processes: markers, the process table, adoption of a process this one did not start, exit records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from localcml.core.dirlock import DirectoryLock, WorkspaceBusy
from localcml.core.process_records import record_path, write_record
from localcml.core.process_table import ProcessTable
from localcml.core.processes import EXIT_FILE_ENV, EXIT_UNKNOWN, Adopted, describe_exit, marker, read_exit, spawn
from localcml.environment import process_env
from localcml.models.supervisor import RestartPolicy
from tests.waiting import wait_for


def _spawn(tmp_path, role, argv, **extra):
    env = process_env({"PYTHONPATH": os.pathsep.join(sys.path)}, marker(tmp_path / "w", role), extra)
    return spawn(argv, cwd=tmp_path, env=env, log_path=tmp_path / f"{role.replace(':', '-')}.log")


def test_the_table_finds_marked_processes_by_role_and_their_top_process(tmp_path):
    (tmp_path / "w").mkdir()
    shell = _spawn(tmp_path, "run:r1", ["bash", "-c", "sleep 60 & wait"])
    other = _spawn(tmp_path, "replica:d1:0", [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        table = wait_for(
            lambda: (
                (t := ProcessTable.scan(tmp_path / "w")) and len(t.of("run:r1")) == 2 and t.of("replica:d1:0") and t
            ),
            "both processes to start",
        )
        top = table.top("run:r1")
        assert top.pid == shell.pid == top.pgid  # the shell, not the sleep it started
        assert set(table.roles()) == {"run:r1", "replica:d1:0"} and table.roles("replica:") == ["replica:d1:0"]
        assert ProcessTable.scan(tmp_path / "elsewhere").processes == []  # another workspace's are not W's
        table.claim("run:r1")
        strays = table.kill_unclaimed()
        assert [s.role for s in strays] == ["replica:d1:0"]
        assert other.wait(30) == -signal.SIGKILL and shell.poll() is None
        assert table.kill("run:r1") == [shell.pid]
        assert shell.wait(30) == -signal.SIGKILL
    finally:
        for proc in (shell, other):
            proc.kill()
            proc.wait()


def test_adopted_process_reports_its_exit_record_or_an_unknown_status(tmp_path):
    (tmp_path / "w").mkdir()
    script = tmp_path / "job.py"
    script.write_text("import sys\nsys.exit(3)\n")
    exit_file = tmp_path / "job.exit"
    engine = _spawn(
        tmp_path,
        "run:r2",
        [sys.executable, "-m", "localcml.jobs.engine", str(script)],
        **{EXIT_FILE_ENV: str(exit_file)},
    )
    adopted = Adopted(engine.pid, exit_file)
    assert adopted.wait(30) == 3 and adopted.poll() == 3
    assert read_exit(exit_file) == {"code": 3} and engine.wait() == 3
    sleeper = _spawn(tmp_path, "run:r3", [sys.executable, "-c", "import time; time.sleep(60)"])
    adopted = Adopted(sleeper.pid, tmp_path / "none.exit")
    assert adopted.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        adopted.wait(0.01)
    sleeper.kill()
    assert adopted.wait(30) == EXIT_UNKNOWN and "unknown status" in describe_exit(adopted.returncode)
    sleeper.wait()
    with pytest.raises(ProcessLookupError):
        Adopted(sleeper.pid)


def test_describe_exit_names_codes_and_signals():
    assert describe_exit(0) == "exit code 0" and describe_exit(-9) == "signal SIGKILL"


def test_one_workspace_per_directory(tmp_path):
    first = DirectoryLock(tmp_path).acquire()
    assert DirectoryLock.held(tmp_path)
    with pytest.raises(WorkspaceBusy, match=rf"another local workspace \(pid {os.getpid()}\) serves this directory"):
        DirectoryLock(tmp_path).acquire()
    first.release()
    assert not DirectoryLock.held(tmp_path)
    DirectoryLock(tmp_path).acquire().release()


def test_restart_policy_backs_off_as_the_kubelet_does():
    policy = RestartPolicy()
    assert [policy.delay(n) for n in range(1, 9)] == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0]
    assert RestartPolicy(backoff_s=0).delay(5) == 0.0


def test_a_record_finds_only_the_process_it_describes(tmp_path):
    """A recorded process is found by pid, start time and command line; a reused pid is never taken for it."""
    workspace = tmp_path / "w"
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    replica = subprocess.Popen([*sleeper, "localcml.models.replica", "d1/replica-0.ready"], start_new_session=True)
    stranger = subprocess.Popen(sleeper, start_new_session=True)  # holds a pid a stale record names
    try:
        write_record(workspace, "replica:d1:0", replica.pid, ("localcml.models.replica", "d1/replica-0.ready"))
        write_record(workspace, "replica:d2:0", stranger.pid, ("localcml.models.replica", "d2/replica-0.ready"))
        write_record(workspace, "replica:d3:0", stranger.pid, ())
        shifted = json.loads(record_path(workspace, "replica:d3:0").read_text())
        record_path(workspace, "replica:d3:0").write_text(json.dumps({**shifted, "start": shifted["start"] - 1}))
        table = wait_for(
            lambda: (t := ProcessTable.scan(workspace)) and t.processes and t, "the recorded process to exec"
        )
        assert [(p.pid, p.role, p.marked) for p in table.processes] == [(replica.pid, "replica:d1:0", False)]
        assert table.top("replica:d1:0").pid == replica.pid
        assert sorted(p.name for p in table.stale_records) == ["replica_d2_0.json", "replica_d3_0.json"]
        assert [s.pid for s in table.kill_unclaimed()] == [replica.pid]
        assert replica.wait(30) == -signal.SIGKILL and stranger.poll() is None  # the stranger is never signalled
        table.forget_stale()
        assert ProcessTable.scan(workspace).processes == []
        assert sorted(p.name for p in (workspace / "processes").iterdir()) == ["replica_d1_0.json"]
    finally:
        for proc in (replica, stranger):
            proc.kill()
            proc.wait()
