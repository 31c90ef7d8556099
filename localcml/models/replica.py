"""A model replica: serves one model function over CML's endpoint protocol on loopback, one request at a time.

Run as ``python -m localcml.models.replica --build-dir DIR --file REL_PATH --function NAME
[--host 127.0.0.1] [--port 0] --ready-file PATH``. Environment: ``CML_MONITOR_MODEL_ACCESS_KEY``
(required), ``CML_MONITOR_AUTH_ENABLED`` ("true" requires ``Authorization: Bearer
$CML_MONITOR_MODEL_API_KEY``), plus whatever the model function reads (``CML_MONITOR_*`` for metrics).

Protocol: ``POST /model`` (or ``/``) with ``{"accessKey": KEY, "request": {...}}`` ->
200 ``{"success": true, "response": <return value>}``. Refusals are
``{"success": false, "error": {"code", "message"}}``: 400 ``request.invalid`` (not JSON, or not
that shape), 401 ``auth.unauthorized`` (auth on, Bearer missing or wrong; checked first),
403 ``model.access_key_invalid`` (accessKey is not this model's), 411 ``request.length_required``,
413 ``request.too_large`` (over 5 MiB), 500 ``model.error`` (the function raised; message redacted),
500 ``model.metrics_error`` (the function answered but its metrics record could not be written,
e.g. the metrics store is out of space: the call fails, naming why, with no traceback).
``GET /health`` -> 200 ``{"status": "ok"}``. Once listening, ``{"port", "pid"}`` is written
atomically to the ready file (removed again on SIGTERM/SIGINT shutdown). Exit codes: 0 clean stop,
1 the model function cannot be loaded, 2 bad arguments or environment.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

from cmlbase.logs import KV, REDACTOR, configure_logging, register_secret
from localcml.metrics.transport import MetricsWriteError
from localcml.models.runtime import load_model

log = logging.getLogger("localcml.models.replica")

ACCESS_KEY_ENV = "CML_MONITOR_MODEL_ACCESS_KEY"
AUTH_ENABLED_ENV = "CML_MONITOR_AUTH_ENABLED"
API_KEY_ENV = "CML_MONITOR_MODEL_API_KEY"
#: Set by the local workspace's fault plan (``deploy=never-healthy``): ``/health`` answers 503.
UNHEALTHY_ENV = "CML_MONITOR_FAULT_UNHEALTHY"
MAX_BODY_BYTES = 5 * 1024 * 1024
#: Larger refused bodies are not drained; the connection is just closed.
MAX_DRAIN_BYTES = 64 * 1024 * 1024
MODEL_PATHS = ("/model", "/")


class ReplicaServer(HTTPServer):
    """Single-threaded HTTP server holding the model function and the keys it checks."""

    def __init__(self, address: tuple[str, int], func: Callable[..., Any], access_key: str, api_key: str | None):
        self.func, self.access_key, self.api_key = func, access_key, api_key
        super().__init__(address, ReplicaHandler)

    def server_bind(self) -> None:  # skip HTTPServer's reverse DNS lookup of the host
        super(HTTPServer, self).server_bind()
        self.server_name, self.server_port = self.server_address[:2]


def _same(given: Any, expected: str) -> bool:
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())


class ReplicaHandler(BaseHTTPRequestHandler):
    """One request: checks, calls the model function, answers JSON, logs one line."""

    server: ReplicaServer
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.0"  # one request per connection: a kept-alive client cannot hog the replica

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the stdlib access log; :meth:`_reply` logs one redacted line instead."""

    def _reply(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        ms = int((time.monotonic() - self._started) * 1000)
        # logged before the body goes out, so the line is written by the time the caller has the answer
        log.info("request %s", KV(method=self.command, path=self.path.split("?")[0], status=status, ms=ms))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        self._reply(status, {"success": False, "error": {"code": code, "message": REDACTOR(message)}})

    def do_GET(self) -> None:
        self._started = time.monotonic()
        if self.path.split("?")[0] == "/health":
            if os.environ.get(UNHEALTHY_ENV):  # fault injected: this replica never becomes healthy
                return self._error(503, "replica.unhealthy", "health check failed (fault injected)")
            self._reply(200, {"status": "ok"})
        else:
            self._error(404, "not_found", f"no such path {self.path.split('?')[0]!r}")

    def do_POST(self) -> None:
        self._started = time.monotonic()
        if self.path.split("?")[0] not in MODEL_PATHS:
            return self._error(404, "not_found", f"no such path {self.path.split('?')[0]!r}; POST /model")
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            return self._error(411, "request.length_required", "send the JSON body with a Content-Length")
        if int(length) > MAX_BODY_BYTES:
            if int(length) <= MAX_DRAIN_BYTES:  # read it so the client sees the answer, not a reset
                remaining = int(length)
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            return self._error(413, "request.too_large", f"request body of {length} bytes exceeds the 5 MB limit")
        body = self.rfile.read(int(length))
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return self._error(400, "request.invalid", "request body is not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("request"), dict):
            return self._error(400, "request.invalid", 'expected {"accessKey": "...", "request": {...}}')
        server = self.server
        if server.api_key is not None:
            auth = self.headers.get("Authorization", "")
            token = auth[7:].strip() if auth[:7].lower() == "bearer " else None
            if not _same(token, server.api_key):
                return self._error(
                    401,
                    "auth.unauthorized",
                    "missing or invalid model API key: send Authorization: Bearer <model API key>",
                )
        if not _same(payload.get("accessKey"), server.access_key):
            return self._error(403, "model.access_key_invalid", "accessKey is not this model's access key")
        try:
            result = server.func(payload["request"])
            json.dumps(result, allow_nan=False)
        except MetricsWriteError as exc:  # the store's trouble, not the model's: one line, no traceback
            log.error("prediction not recorded %s", KV(error=str(exc)))
            return self._error(500, "model.metrics_error", str(exc))
        except Exception as exc:
            log.exception("model function raised")
            return self._error(500, "model.error", f"{type(exc).__name__}: {exc}")
        self._reply(200, {"success": True, "response": result})


def _write_ready(path: Path, port: int) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"port": port, "pid": os.getpid()}))
    os.replace(tmp, path)


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m localcml.models.replica", description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True, type=Path, help="build snapshot directory")
    parser.add_argument("--file", required=True, help="model file relative to the build dir")
    parser.add_argument("--function", required=True, help="model function name")
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: any free port)")
    parser.add_argument("--ready-file", required=True, type=Path, help='where to write {"port", "pid"}')
    return parser.parse_args(argv)


def _loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM/SIGINT.

    Returns:
        The exit code: 0 after a clean stop, 1 if the function cannot be loaded, 2 on bad
        arguments or environment.
    """
    args = _parse(argv)
    configure_logging("modelserver")
    access_key = os.environ.get(ACCESS_KEY_ENV)
    auth = os.environ.get(AUTH_ENABLED_ENV, "false").lower() == "true"
    api_key = os.environ.get(API_KEY_ENV) if auth else None
    problems = [f"{ACCESS_KEY_ENV} is not set"] if not access_key else []
    if auth and not api_key:
        problems.append(f"{AUTH_ENABLED_ENV}=true but {API_KEY_ENV} is not set")
    if not _loopback(args.host):
        problems.append(f"--host {args.host!r}: a local replica binds loopback only (127.0.0.1)")
    if problems:
        log.error("cannot start: %s", "; ".join(problems))
        return 2
    register_secret(access_key)
    register_secret(api_key)
    ready_file = args.ready_file.resolve()
    try:
        func = load_model(args.build_dir, args.file, args.function)
    except Exception as exc:
        log.exception("cannot load %s:%s from %s: %s", args.file, args.function, args.build_dir, exc)
        return 1
    server = ReplicaServer((args.host, args.port), func, access_key, api_key)

    def stop(signum: int, _frame: Any) -> None:
        log.info("signal %s: stopping after the current request", signal.Signals(signum).name)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    _write_ready(ready_file, server.server_port)
    log.info(
        "serving %s",
        KV(file=args.file, function=args.function, host=args.host, port=server.server_port, auth=auth, pid=os.getpid()),
    )
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        ready_file.unlink(missing_ok=True)
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
