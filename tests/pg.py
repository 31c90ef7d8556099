"""A throwaway PostgreSQL server for tests: ``with start_postgres() as url: ...``.

Uses the server binaries (``initdb``, ``pg_ctl``, ``postgres``) from ``PG_BIN``, ``/usr/local/bin``,
``PATH`` or Debian's ``/usr/lib/postgresql/*/bin``. As root the server runs as the ``postgres``
system user (``runuser -u postgres --``), because PostgreSQL refuses to run as root. Data
directory, unix socket and log live in a fresh temp dir, removed afterwards.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: Seconds pg_ctl waits for start and stop.
PG_START_TIMEOUT_S = 60


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, or None when PostgreSQL is not installed."""
    candidates = [os.environ.get("PG_BIN", ""), "/usr/local/bin"]
    candidates += [str(Path(p).parent) for p in (shutil.which("initdb"),) if p]
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if directory and all((Path(directory) / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(directory)
    return None


def postgres_unavailable_reason() -> str | None:
    """Why ``start_postgres`` cannot work here (for ``pytest.skip``), or None if it can."""
    if find_pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) not found; set PG_BIN"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' system user to run the server"
        if shutil.which("runuser") is None:
            return "running as root and runuser is not available"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def start_postgres(tmpdir: str | os.PathLike | None = None) -> Iterator[str]:
    """Run a private PostgreSQL server for the duration of the block.

    Args:
        tmpdir: parent of the server's directory; must be traversable by the ``postgres``
            user when running as root (pytest's ``tmp_path`` is not: it is under a 0700 dir).
            Default: the system temp dir.

    Yields:
        A URL like ``postgresql://postgres@127.0.0.1:PORT/postgres`` (trust auth, loopback only).

    Raises:
        RuntimeError: the binaries are missing or the server did not start (with its log).
    """
    reason = postgres_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    bin_dir = find_pg_bin()
    root = Path(tempfile.mkdtemp(prefix="cml-monitor-pg-", dir=tmpdir))
    prefix: list[str] = []
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, log_file, port = root / "data", root / "server.log", _free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run(prefix + list(cmd), capture_output=True, text=True, timeout=PG_START_TIMEOUT_S + 30)
        if done.returncode != 0:
            server_log = log_file.read_text() if log_file.exists() else ""
            raise RuntimeError(f"{' '.join(cmd[:2])} failed ({done.returncode}): {done.stderr.strip()}\n{server_log}")

    try:
        run(
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -F"
        run(
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(log_file),
            "-w",
            "-t",
            str(PG_START_TIMEOUT_S),
            "start",
        )
        try:
            yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
        finally:
            run(str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
