"""The local workspace's HTTP server: one port, routed by host name as CML routes its host names.

- ``modelservice.<domain>`` (and ``POST /model`` on the bare domain): the model endpoint;
- ``monitoring.<domain>``: the model metrics service (``localcml.metrics.urls``; API key needed);
- ``<subdomain>.<domain>``: the application with that subdomain (forwarded to its port);
- the bare domain: every operation of the spec under ``/api/v2`` (Bearer API key required; an
  operation the workspace cannot honour answers 501 naming itself), without authentication
  ``GET /api/v2/swagger.json`` (the compact spec, as CML serves its spec unauthenticated) and
  ``GET /local/v1/status``, and with the API key the local admin paths ``/local/v1/<name>``
  (the fault plan, the scheduler).

Every API operation is a fault point ``api.<operation>``; ``latency.model`` and
``latency.metrics`` delay client calls (see ``localcml.faults``).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from localcml.core import hosts
from localcml.core.bodies import read_body
from localcml.core.errors import INTERNAL, NOT_FOUND, UNAUTHENTICATED, UNIMPLEMENTED, ApiError, invalid
from localcml.core.spec import match, method_name, operations, spec
from localcml.core.state import CALLER_RUN
from localcml.faults import Fault, FaultPlan
from localcml.models.router import DROP, MAX_BODY_BYTES, ModelRouter, error

log = logging.getLogger(__name__)

Handler = Callable[[dict, dict, Any], dict]
MAX_API_BODY_BYTES = 16 * 1024 * 1024
MAX_DRAIN_BYTES = 64 * 1024 * 1024
#: gRPC DEADLINE_EXCEEDED, which grpc-gateway answers with HTTP 504.
DEADLINE_EXCEEDED = 4
#: How long an injected API ``timeout`` holds the call when the fault names no duration.
DEFAULT_TIMEOUT_SECONDS = 1.0


class _Injected(Exception):
    """An injected API fault: answer ``status`` with ``body`` (status 0: drop the connection)."""

    def __init__(self, status: int, body: bytes = b""):
        super().__init__(status)
        self.status, self.body = status, body


def _deadline_body(message: str, code: int = DEADLINE_EXCEEDED) -> bytes:
    return json.dumps({"error": message, "code": code, "message": message, "details": []}).encode()


#: ``handler(method, body) -> answer`` of a local admin path ``/local/v1/<name>``.
LocalHandler = Callable[[str, bytes], dict]
#: ``metrics(path, body, latency) -> (status, json bytes)`` of the metrics service; None: not a metrics path.
MetricsHandler = Callable[[str, bytes, Callable[[str], None]], "tuple[int, bytes] | None"]
#: ``forward(subdomain, method, path, headers, body) -> (status, headers, body)``; None: no such application.
AppForwarder = Callable[[str, str, str, Mapping[str, str], bytes], "tuple[int, list, bytes] | None"]
#: ``tracking(method, target, headers, body) -> (status, headers, body)``: the MLflow tracking server.
Tracking = Callable[[str, str, Mapping[str, str], bytes], "tuple[int, list, bytes]"]
#: Path prefix of the MLflow tracking server on the bare domain (``MLFLOW_TRACKING_URI``), and its body cap.
TRACKING_PREFIX = "/mlflow"
MAX_TRACKING_BODY_BYTES = 512 * 1024 * 1024


@dataclass
class Services:
    """What the server answers with.

    Attributes:
        handlers: operationId -> handler(path params, query params, body) for every operation.
        api_key: the user's API v2 key (``authorization: Bearer``).
        router: the model endpoint router.
        status: the ``/local/v1/status`` document.
        faults: the workspace's fault plan (None: no fault injection).
        engine_caller: the job run holding an engine API key (accepted like ``api_key``).
        metrics: the metrics service.
        forward: the applications' forwarder.
        local: the local admin paths, by name.
    """

    handlers: dict[str, Handler]
    api_key: str
    router: ModelRouter
    status: Callable[[], dict]
    faults: FaultPlan | None = None
    engine_caller: Callable[[str], str | None] | None = None
    metrics: MetricsHandler | None = None
    forward: AppForwarder | None = None
    local: dict[str, LocalHandler] = field(default_factory=dict)
    tracking: Tracking | None = None


class LoopbackServer(ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 only, one thread per connection, serving in a background thread."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0):
        self._thread: threading.Thread | None = None
        super().__init__((hosts.LOOPBACK, port), handler)

    def server_bind(self) -> None:  # skip the reverse DNS lookup of HTTPServer.server_bind
        super(HTTPServer, self).server_bind()
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://{hosts.LOOPBACK}:{self.server_port}"

    def start(self) -> LoopbackServer:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name=type(self).__name__
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)


class ApiServer(LoopbackServer):
    """The workspace's server: every host name of the workspace, on one port.

    Args:
        services: what to answer with.
        port: 0 for any free port.
    """

    def __init__(self, services: Services, port: int = 0):
        missing = sorted(set(operations()) - set(services.handlers))
        if missing:
            raise ValueError(f"no handler for operations {missing}")
        self.services = services
        self.handlers, self.api_key, self.router = services.handlers, services.api_key, services.router
        self.faults = services.faults
        super().__init__(RequestHandler, port)


class RequestHandler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # kept-alive clients otherwise stall ~40 ms per request

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, close: bool = False) -> None:
        if status == DROP[0]:  # an injected drop: close without answering
            self.close_connection = True
            return
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the caller gave up (e.g. its timeout fired)
            log.debug("caller went away before the answer %s", self.path)
            self.close_connection = True

    def _authorized(self) -> bool:
        given = self.headers.get("authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {self.server.api_key}".encode())

    def _engine_run(self) -> str | None:
        """The job run whose engine key authorises this request, if it is one."""
        given = self.headers.get("authorization", "")
        caller = self.server.services.engine_caller
        if caller is None or not given.startswith("Bearer "):
            return None
        return caller(given[len("Bearer ") :])

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or None (after draining what is reasonable) when it exceeds ``limit``.

        Raises:
            _Injected: a 400 (connection closed) when Content-Length is not a number of bytes.
        """
        text = (self.headers.get("Content-Length") or "0").strip()
        if not text.isdigit():  # a negative length would block reading until the caller hangs up
            raise _Injected(
                400, error(400, "request.invalid", f"Content-Length {text[:20]!r} is not a number of bytes")[1]
            )
        length = int(text)
        if length > limit:
            remaining = length if length <= MAX_DRAIN_BYTES else 0
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 1 << 20))
                if not chunk:
                    break
                remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        try:
            self._route(method, url)
        except _Injected as exc:
            self._send(exc.status, exc.body, close=exc.status == 400)
        except ApiError as exc:
            self._send(exc.http_status, exc.body())
        except Exception as exc:
            log.exception("%s %s failed", method, url.path)
            self._send(500, ApiError(INTERNAL, f"internal error: {type(exc).__name__}: {exc}").body())

    def _latency(self, point: str) -> None:
        """A rehearsed client round trip (``latency.model``/``latency.metrics`` in the fault plan)."""
        seconds = self.server.faults.latency(point) if self.server.faults is not None else 0.0
        if seconds > 0:
            time.sleep(seconds)

    def _route(self, method: str, url: Any) -> None:
        """Answer one request: by host name (model, metrics, application), else the API on the bare domain."""
        name = hosts.service_name(self.headers.get("Host", ""), f"{hosts.LOOPBACK}")
        if name == hosts.MODEL_SERVICE or (name is None and url.path == "/model" and method == "POST"):
            return self._model(method)
        if name is None and (url.path + "/").startswith(TRACKING_PREFIX + "/"):
            return self._tracking(method, url)
        raw = self._read_body(MAX_API_BODY_BYTES)
        if raw is None:
            return self._send(400, invalid(f"request body exceeds {MAX_API_BODY_BYTES} bytes").body(), close=True)
        if name == hosts.METRICS_SERVICE:
            return self._metrics(method, url.path, raw)
        if name is not None:
            return self._application(name, method, url, raw)
        if url.path == "/local/v1/status" and method == "GET":
            return self._send(200, json.dumps(self.server.services.status()).encode())
        if url.path == "/api/v2/swagger.json" and method == "GET":
            return self._send(200, json.dumps(spec()).encode())
        if url.path.startswith("/local/v1/"):
            return self._send(200, json.dumps(self._local(url.path[len("/local/v1/") :], method, raw)).encode())
        self._send(200, json.dumps(self._api(method, url.path, url.query, raw)).encode())

    def _model(self, method: str) -> None:
        if method != "POST":
            return self._send(*error(405, "request.method", "the model endpoint takes POST /model"))
        body = self._read_body(MAX_BODY_BYTES)
        if body is None:
            return self._send(*error(413, "request.too_large", "request body exceeds the 5 MB limit"), close=True)
        self._latency("latency.model")
        self._send(*self.server.router.handle(self.headers, body))

    def _metrics(self, method: str, path: str, raw: bytes) -> None:
        metrics = self.server.services.metrics
        if method != "POST" or metrics is None:
            return self._send(
                404, json.dumps({"error": "not_found", "message": f"no metrics call {method} {path}"}).encode()
            )
        if self._caller() is None:
            return self._send(
                401,
                json.dumps({"error": "unauthenticated", "message": "send authorization: Bearer <API v2 key>"}).encode(),
            )
        answer = metrics(path, raw, self._latency)
        if answer is None:
            return self._send(404, json.dumps({"error": "not_found", "message": f"no metrics call {path}"}).encode())
        self._send(*answer)

    def _tracking(self, method: str, url: Any) -> None:
        """An MLflow client's call, forwarded to the tracking server (the API key, or an engine's, as its token)."""
        tracking = self.server.services.tracking
        if tracking is None:
            return self._send(404, invalid("this workspace runs no MLflow tracking server").body())
        if self._caller() is None:
            message = "Unauthorized: send the API v2 key as MLFLOW_TRACKING_TOKEN (authorization: Bearer <key>)"
            return self._send(401, ApiError(UNAUTHENTICATED, message).body())
        raw = self._read_body(MAX_TRACKING_BODY_BYTES)
        if raw is None:
            return self._send(413, invalid(f"request body exceeds {MAX_TRACKING_BODY_BYTES} bytes").body(), close=True)
        target = (url.path[len(TRACKING_PREFIX) :] or "/") + (f"?{url.query}" if url.query else "")
        self._relay(*tracking(method, target, self.headers, raw))

    def _application(self, subdomain: str, method: str, url: Any, raw: bytes) -> None:
        forward = self.server.services.forward
        target = url.path + (f"?{url.query}" if url.query else "")
        answer = forward(subdomain, method, target, self.headers, raw) if forward is not None else None
        if answer is None:
            body = f"no application serves the subdomain {subdomain!r} (or it is not running)".encode()
            return self._send(404, json.dumps({"error": "not_found", "message": body.decode()}).encode())
        self._relay(*answer)

    def _relay(self, status: int, headers: list, body: bytes) -> None:
        """Send a forwarded answer (hop headers dropped, length recomputed)."""
        try:
            self.send_response(status)
            for key, value in headers:
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _caller(self) -> str | None:
        """``"user"`` for the user's key, the run id for an engine's key, None otherwise."""
        if self._authorized():
            return "user"
        return self._engine_run()

    def _api(self, method: str, path: str, query_text: str, raw: bytes) -> dict:
        found = match(method, path)
        if found is None:
            known = any(match(m, path) for m in ("GET", "POST", "PATCH", "DELETE", "PUT") if m != method)
            raise ApiError(UNIMPLEMENTED if known else NOT_FOUND, "Method Not Allowed" if known else "Not Found")
        op, path_params = found
        run_id = None if self._authorized() else self._engine_run()
        if run_id is None and not self._authorized():
            raise ApiError(
                UNAUTHENTICATED,
                "Unauthorized: missing or invalid API key (send the header authorization: Bearer <API v2 key>)",
            )
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        unknown = sorted(set(query) - set(op.query_params))
        if unknown:
            raise invalid(
                f"{op.operation_id} does not take query parameter(s) {unknown}; it takes {list(op.query_params)}"
            )
        body: Any = None
        if op.body is not None:
            try:
                body = json.loads(raw or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise invalid(f"{op.operation_id}: the request body is not valid JSON") from None
            body = read_body(body, op.body, op.operation_id)
        handler = self.server.handlers[op.operation_id]
        fault = self.server.faults.take(f"api.{method_name(op.operation_id)}") if self.server.faults else None
        token = CALLER_RUN.set(run_id)
        try:
            if fault is None:
                return handler(path_params, query, body)
            return self._faulty(fault, op.operation_id, lambda: handler(path_params, query, body))
        finally:
            CALLER_RUN.reset(token)

    @staticmethod
    def _faulty(fault: Fault, operation: str, call: Callable[[], dict]) -> dict:
        """Run an API call under an injected fault (before or after the call takes effect)."""
        if fault.action == "delay":
            time.sleep(fault.seconds or 0)
            return call()
        if fault.action == "timeout":  # the gateway's deadline passes before the call is made
            time.sleep(fault.seconds if fault.seconds is not None else DEFAULT_TIMEOUT_SECONDS)
            raise _Injected(504, _deadline_body(f"{operation}: context deadline exceeded (fault injected)"))
        if fault.action == "drop":
            raise _Injected(DROP[0])
        if fault.action == "status":
            raise _Injected(
                int(fault.status), ApiError(INTERNAL, f"{operation}: HTTP {fault.status} (fault injected)").body()
            )
        call()  # -after actions: the call takes effect, then its answer is lost
        if fault.action == "drop-after":
            raise _Injected(DROP[0])
        raise _Injected(
            int(fault.status),
            _deadline_body(
                f"{operation}: context deadline exceeded (fault injected after the call took effect)", INTERNAL
            ),
        )

    def _local(self, name: str, method: str, raw: bytes) -> dict:
        """A local admin path (``faults``, ``scheduler``): the user's API key only."""
        if not self._authorized():
            raise ApiError(
                UNAUTHENTICATED,
                f"Unauthorized: /local/v1/{name} needs the API v2 key (authorization: Bearer <API v2 key>)",
            )
        handler = self.server.services.local.get(name)
        if handler is None:
            raise ApiError(NOT_FOUND, f"no local path /local/v1/{name}; known: {sorted(self.server.services.local)}")
        return handler(method, raw)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")
