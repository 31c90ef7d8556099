"""The local workspace's HTTP server: API v2 routes, the model endpoint, and local-only paths.

Routes: every operation of the compact spec under ``/api/v2`` (Bearer API key required),
``POST /model`` (the model endpoint), without authentication ``GET /api/v2/swagger.json`` (the
compact spec, as CML serves its spec unauthenticated) and ``GET /local/v1/status``, and with the
API key ``GET|POST /local/v1/faults`` (the fault plan; ``{"add": [...]}`` or ``{"clear": true}``).
Every API operation is a fault point ``api.<operation>`` (see ``localcml.faults``).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from localcml.core.bodies import check_body
from localcml.core.errors import INTERNAL, NOT_FOUND, UNAUTHENTICATED, UNIMPLEMENTED, ApiError, invalid
from localcml.core.spec import match, method_name, operations, spec
from localcml.core.state import CALLER_RUN
from localcml.faults import Fault, FaultPlan
from localcml.models.router import DROP, MAX_BODY_BYTES, ModelRouter, error
from monitoring.core.errors import ConfigError

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


class ApiServer(ThreadingHTTPServer):
    """Serves on 127.0.0.1 only, one thread per connection.

    Args:
        handlers: operationId -> handler(path params, query params, body) -> response dict.
        api_key: the API v2 key every ``/api/v2`` call must send as ``authorization: Bearer``.
        router: the model endpoint router.
        status: returns the ``/local/v1/status`` document.
        port: 0 for any free port.
        faults: the workspace's fault plan (None: no fault injection).
        engine_caller: the job run holding an engine API key (accepted like ``api_key``), or None.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        handlers: dict[str, Handler],
        api_key: str,
        router: ModelRouter,
        status: Callable[[], dict],
        port: int = 0,
        faults: FaultPlan | None = None,
        engine_caller: Callable[[str], str | None] | None = None,
    ):
        missing = sorted(set(operations()) - set(handlers))
        if missing:
            raise ValueError(f"no handler for operations {missing}")
        self.handlers, self.api_key, self.router, self.status = handlers, api_key, router, status
        self.faults = faults
        self.engine_caller = engine_caller
        self._thread: threading.Thread | None = None
        super().__init__(("127.0.0.1", port), RequestHandler)

    def server_bind(self) -> None:  # skip the reverse DNS lookup of HTTPServer.server_bind
        super(HTTPServer, self).server_bind()
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True, name="cml-local-api"
        )
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)


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
        if self.server.engine_caller is None or not given.startswith("Bearer "):
            return None
        return self.server.engine_caller(given[len("Bearer ") :])

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

    def _route(self, method: str, url: Any) -> None:
        """Answer one request (the model endpoint, local paths, or an API v2 operation)."""
        if url.path == "/model" and method == "POST":
            body = self._read_body(MAX_BODY_BYTES)
            if body is None:
                return self._send(*error(413, "request.too_large", "request body exceeds the 5 MB limit"), close=True)
            return self._send(*self.server.router.handle(self.headers, body))
        raw = self._read_body(MAX_API_BODY_BYTES)
        if raw is None:
            return self._send(400, invalid(f"request body exceeds {MAX_API_BODY_BYTES} bytes").body(), close=True)
        if url.path == "/local/v1/status" and method == "GET":
            return self._send(200, json.dumps(self.server.status()).encode())
        if url.path == "/api/v2/swagger.json" and method == "GET":
            return self._send(200, json.dumps(spec()).encode())
        if url.path == "/local/v1/faults":
            return self._send(200, json.dumps(self._faults(method, raw)).encode())
        self._send(200, json.dumps(self._api(method, url.path, url.query, raw)).encode())

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
            check_body(body, op.body)
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

    def _faults(self, method: str, raw: bytes) -> dict:
        """``GET``: the fault plan; ``POST {"add": [...], "clear": true | "<point>"}``: change it."""
        if not self._authorized():
            raise ApiError(
                UNAUTHENTICATED,
                "Unauthorized: the fault plan needs the API v2 key (authorization: Bearer <API v2 key>)",
            )
        if self.server.faults is None:
            raise ApiError(NOT_FOUND, "this workspace has no fault plan")
        if method == "POST":
            try:
                change = json.loads(raw or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise invalid("fault plan change: the body is not JSON") from None
            if not isinstance(change, dict) or set(change) - {"add", "clear"}:
                raise invalid('fault plan change: expected {"add": ["endpoint=503 x3", ...], "clear": true}')
            clear, add = change.get("clear"), change.get("add") or []
            if not isinstance(add, list) or not all(isinstance(a, str) for a in add):
                raise invalid("fault plan change: 'add' must be a list of fault texts")
            try:
                if clear:
                    self.server.faults.clear(clear if isinstance(clear, str) else None)
                self.server.faults.add(*add)
            except ConfigError as exc:
                raise invalid("; ".join(exc.problems)) from None
        elif method != "GET":
            raise ApiError(UNIMPLEMENTED, "Method Not Allowed")
        return {"faults": [{"spec": f.spec(), "fired": f.fired} for f in self.server.faults.faults()]}

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
