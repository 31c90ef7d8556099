"""The workspace's MLflow tracking server: a real ``mlflow server`` process, started on first use.

CML runs MLflow for its Experiments and its Model Registry and points every engine's ``mlflow`` at
it. Locally the workspace runs the ``mlflow`` package's own server (SQLite backend in
``W/mlflow/mlflow.db``, artifacts under ``W/mlflow/artifacts`` served by the server itself) on a
free loopback port, and reaches it through its own port at ``/mlflow`` (``MLFLOW_TRACKING_URI``
of every engine), so the URI stays the same across daemon restarts and a workspace that never
uses MLflow never pays its start-up (tens of seconds on a small machine). The process is the
workspace's (marker ``tracking``): stopped with it, and killed by a restarted daemon if a crashed
one left it running.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cmlbase.logs import KV
from localcml.core.errors import ALREADY_EXISTS, INTERNAL, NOT_FOUND, ApiError, invalid
from localcml.core.hosts import LOOPBACK
from localcml.core.processes import marker, spawn, stop_group
from localcml.core.relay import HOP_HEADERS, relay
from localcml.environment import process_env
from localcml.faults import FaultPlan

log = logging.getLogger(__name__)

#: How long the first call waits for a starting server (migrating a new SQLite store is slow).
START_TIMEOUT_SECONDS = 240.0
CALL_TIMEOUT_SECONDS = 120.0
POLL_SECONDS = 0.25
ROLE = "tracking"
#: MLflow error codes -> gRPC codes of the API v2 answer.
_CODES = {
    "RESOURCE_DOES_NOT_EXIST": NOT_FOUND,
    "RESOURCE_ALREADY_EXISTS": ALREADY_EXISTS,
    "INVALID_PARAMETER_VALUE": 3,
    "INVALID_STATE": 9,
    "BAD_REQUEST": 3,
}


class TrackingDown(ApiError):
    """The tracking server is not answering (stopped by a fault, or failed to start)."""

    def __init__(self, message: str):
        super().__init__(14, message)  # gRPC UNAVAILABLE

    @property
    def http_status(self) -> int:
        return 503


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


class TrackingServer:
    """Starts, stops and calls the workspace's ``mlflow server``.

    Args:
        workspace_dir: W (store and artifacts in ``W/mlflow/``, log in ``W/mlflow/server.log``).
        start_timeout: seconds a start may take before calls fail with 503.
        faults: the workspace's fault plan (point ``tracking``: ``503 x2`` answers every MLflow call,
            the proxied ones and the API v2 ones, with that status without reaching the server).
    """

    def __init__(
        self, workspace_dir: Path, start_timeout: float = START_TIMEOUT_SECONDS, faults: FaultPlan | None = None
    ):
        self.dir = Path(workspace_dir) / "mlflow"
        self.workspace_dir = Path(workspace_dir)
        self.start_timeout = start_timeout
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._port = 0
        self._closed = False
        self.faults = faults

    @property
    def artifacts_dir(self) -> Path:
        return self.dir / "artifacts"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    def _spawn(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._port = _free_port()
        argv = [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.dir / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.artifacts_dir),
            "--host",
            LOOPBACK,
            "--port",
            str(self._port),
            "--workers",
            "1",
        ]
        env = process_env({"MLFLOW_DISABLE_TELEMETRY": "true"}, marker(self.workspace_dir, ROLE))
        self._proc = spawn(argv, cwd=self.dir, env=env, log_path=self.log_path)
        log.info("MLflow tracking server starting %s", KV(port=self._port, log=self.log_path))

    def _healthy(self) -> bool:
        conn = http.client.HTTPConnection(LOOPBACK, self._port, timeout=2)
        try:
            conn.request("GET", "/health")
            return conn.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def ensure(self) -> int:
        """The port of a healthy server, started now if none runs.

        Raises:
            TrackingDown: stopped (a fault), the workspace is stopping, or it did not come up in time.
        """
        with self._lock:
            if self._closed:
                raise TrackingDown("the local workspace is stopping; the MLflow tracking server is not running")
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
            proc, deadline = self._proc, time.monotonic() + self.start_timeout
            while not self._healthy():
                if proc.poll() is not None:
                    self._proc = None
                    raise TrackingDown(
                        f"the MLflow tracking server exited with code {proc.returncode}; see {self.log_path}"
                    )
                if time.monotonic() > deadline:
                    raise TrackingDown(f"the MLflow tracking server did not start within {self.start_timeout:g} s")
                time.sleep(POLL_SECONDS)  # a real server is starting: short bounded polling
            return self._port

    def stop(self) -> None:
        """Stop the server (the workspace is stopping)."""
        with self._lock:
            self._closed = True
            proc, self._proc = self._proc, None
        if proc is not None:
            stop_group(proc, 10.0)

    # -- calls -------------------------------------------------------------------------------
    def forward(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> tuple[int, list, bytes]:
        """Forward one request of an MLflow client (``target`` without the ``/mlflow`` prefix)."""
        fault = self.faults.take("tracking") if self.faults is not None else None
        if fault is not None:
            message = f"the MLflow tracking server is unavailable (fault injected: HTTP {fault.status})"
            return int(fault.status), [("Content-Type", "text/plain")], message.encode()
        port = self.ensure()
        sent = {k: v for k, v in headers.items() if k.lower() not in (*HOP_HEADERS, "host", "authorization")}
        sent["Host"] = f"{LOOPBACK}:{port}"
        status, answer_headers, answer = relay(
            port, method, target, sent, body, CALL_TIMEOUT_SECONDS, "the MLflow tracking server"
        )
        return (503 if status == 502 else status), answer_headers, answer

    def call(self, method: str, endpoint: str, payload: dict | None = None, query: str = "") -> dict[str, Any]:
        """One MLflow REST call (``endpoint`` after ``/api/2.0/mlflow/``); its JSON answer.

        Raises:
            ApiError: MLflow's error, mapped to the gRPC code of the same meaning and its message.
        """
        target = f"/api/2.0/mlflow/{endpoint}" + (f"?{query}" if query else "")
        body = json.dumps(payload).encode() if payload is not None else b""
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        status, _, raw = self.forward(method, target, headers, body)
        if status >= 500 and not raw.startswith(b"{"):
            raise TrackingDown(raw.decode(errors="replace"))
        try:
            answer = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(INTERNAL, f"MLflow {endpoint}: HTTP {status}, not JSON") from None
        if status >= 400:
            code = _CODES.get(str(answer.get("error_code")), INTERNAL)
            message = answer.get("message") or f"MLflow {endpoint}: HTTP {status}"
            raise ApiError(code, message) if code != 3 else invalid(message)
        return answer
