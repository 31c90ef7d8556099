"""The local workspace's HTTP server: API v2 routes, the model endpoint, and two local-only paths.

Routes: every operation of the compact spec under ``/api/v2`` (Bearer API key required),
``POST /model`` (the model endpoint), and without authentication ``GET /api/v2/swagger.json``
(the compact spec, as CML serves its spec unauthenticated) and ``GET /local/v1/status``.
"""
from __future__ import annotations

import hmac
import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

from monitoring.local.apierrors import INTERNAL, NOT_FOUND, UNAUTHENTICATED, UNIMPLEMENTED, ApiError, invalid
from monitoring.local.apispec import match, operations, spec
from monitoring.local.bodycheck import check_body
from monitoring.local.router import MAX_BODY_BYTES, ModelRouter, error

log = logging.getLogger(__name__)

Handler = Callable[[dict, dict, Any], dict]
MAX_API_BODY_BYTES = 16 * 1024 * 1024
MAX_DRAIN_BYTES = 64 * 1024 * 1024


class ApiServer(ThreadingHTTPServer):
    """Serves on 127.0.0.1 only, one thread per connection.

    Args:
        handlers: operationId -> handler(path params, query params, body) -> response dict.
        api_key: the API v2 key every ``/api/v2`` call must send as ``authorization: Bearer``.
        router: the model endpoint router.
        status: returns the ``/local/v1/status`` document.
        port: 0 for any free port.
    """

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handlers: dict[str, Handler], api_key: str, router: ModelRouter,
                 status: Callable[[], dict], port: int = 0):
        missing = sorted(set(operations()) - set(handlers))
        if missing:
            raise ValueError(f"no handler for operations {missing}")
        self.handlers, self.api_key, self.router, self.status = handlers, api_key, router, status
        self._thread: threading.Thread | None = None
        super().__init__(("127.0.0.1", port), RequestHandler)

    def server_bind(self) -> None:  # skip the reverse DNS lookup of HTTPServer.server_bind
        super(HTTPServer, self).server_bind()
        self.server_name, self.server_port = self.server_address[:2]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                                        name="cml-local-api")
        self._thread.start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(5)


class RequestHandler(BaseHTTPRequestHandler):
    server: ApiServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, close: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self, limit: int) -> bytes | None:
        """The request body, or None (after draining what is reasonable) when it exceeds ``limit``."""
        length = int(self.headers.get("Content-Length") or 0)
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
            if url.path == "/model" and method == "POST":
                body = self._read_body(MAX_BODY_BYTES)
                if body is None:
                    return self._send(*error(413, "request.too_large", "request body exceeds the 5 MB limit"),
                                      close=True)
                return self._send(*self.server.router.handle(self.headers, body))
            raw = self._read_body(MAX_API_BODY_BYTES)
            if raw is None:
                return self._send(400, invalid(f"request body exceeds {MAX_API_BODY_BYTES} bytes").body(), close=True)
            if url.path == "/local/v1/status" and method == "GET":
                return self._send(200, json.dumps(self.server.status()).encode())
            if url.path == "/api/v2/swagger.json" and method == "GET":
                return self._send(200, json.dumps(spec()).encode())
            self._send(200, json.dumps(self._api(method, url.path, url.query, raw)).encode())
        except ApiError as exc:
            self._send(exc.http_status, exc.body())
        except Exception as exc:  # noqa: BLE001 - any handler bug is a 500 with a runtimeError body
            log.exception("%s %s failed", method, url.path)
            self._send(500, ApiError(INTERNAL, f"internal error: {type(exc).__name__}: {exc}").body())

    def _api(self, method: str, path: str, query_text: str, raw: bytes) -> dict:
        found = match(method, path)
        if found is None:
            known = any(match(m, path) for m in ("GET", "POST", "PATCH", "DELETE", "PUT") if m != method)
            raise ApiError(UNIMPLEMENTED if known else NOT_FOUND, "Method Not Allowed" if known else "Not Found")
        op, path_params = found
        given = self.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.server.api_key}".encode()):
            raise ApiError(UNAUTHENTICATED, "Unauthorized: missing or invalid API key "
                                            "(send the header authorization: Bearer <API v2 key>)")
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        unknown = sorted(set(query) - set(op.query_params))
        if unknown:
            raise invalid(f"{op.operation_id} does not take query parameter(s) {unknown}; "
                          f"it takes {list(op.query_params)}")
        body: Any = None
        if op.body is not None:
            try:
                body = json.loads(raw or b"{}")
            except (ValueError, UnicodeDecodeError):
                raise invalid(f"{op.operation_id}: the request body is not valid JSON") from None
            check_body(body, op.body)
        return self.server.handlers[op.operation_id](path_params, query, body)

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PATCH(self) -> None:  # noqa: N802
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")
