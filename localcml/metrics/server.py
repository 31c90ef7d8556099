"""The model metrics service on its own: a loopback HTTP server over one store (tests, tools).

The workspace serves the same answers at ``monitoring.<domain>`` on its one port; this server is
for code that needs the service without a workspace: point ``CDSW_DOMAIN`` at
``127.0.0.1:<port>`` and ``CDSW_APIV2_KEY`` at its key, and the SDK's calls land here.
"""

from __future__ import annotations

import hmac
from http.server import BaseHTTPRequestHandler

from cmlbase.clock import Clock, SystemClock
from localcml.core.hosts import LOOPBACK
from localcml.core.server import LoopbackServer
from localcml.metrics.responses import MetricsApi
from localcml.metrics.service import answerer
from localcml.metrics.store import MetricsStore


class MetricsServer(LoopbackServer):
    """Serves the metrics calls of ``localcml.metrics.urls`` over ``store``.

    Args:
        store: where records go.
        api_key: the key callers send as ``authorization: Bearer``.
        clock: the clock ``read-metrics`` ends at by default.
    """

    def __init__(self, store: MetricsStore, api_key: str, clock: Clock | None = None):
        self.answer = answerer(MetricsApi(store, (clock or SystemClock()).now_ms))
        self.api_key = api_key
        super().__init__(_Handler)

    @property
    def domain(self) -> str:
        """What ``CDSW_DOMAIN`` must be for the SDK to reach this server."""
        return f"{LOOPBACK}:{self.server_port}"


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the caller sees each answer."""

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        given = self.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {self.server.api_key}".encode()):
            status, body = 401, b'{"error": "unauthenticated", "message": "send authorization: Bearer <API v2 key>"}'
        else:
            answer = self.server.answer(self.path.split("?")[0], raw, lambda point: None)
            status, body = answer if answer is not None else (404, b'{"message": "no such metrics call"}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
