"""Requests to ``<subdomain>.<domain>`` forwarded to the application's own port on loopback."""

from __future__ import annotations

import http.client
from collections.abc import Mapping

from localcml.applications.backend import Applications
from localcml.core.hosts import LOOPBACK

FORWARD_TIMEOUT_SECONDS = 300.0
#: Headers that describe one hop, not the request (RFC 9110 section 7.6.1).
HOP_HEADERS = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer")


def forwarder(apps: Applications):
    """``forward(subdomain, method, target, headers, body) -> (status, headers, body)``; None: nothing serves it."""

    def forward(subdomain: str, method: str, target: str, headers: Mapping[str, str], body: bytes):
        app = apps.by_subdomain(subdomain)
        port = apps.port(app["id"]) if app is not None else None
        if port is None:
            return None
        sent = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
        conn = http.client.HTTPConnection(LOOPBACK, port, timeout=FORWARD_TIMEOUT_SECONDS)
        try:
            conn.request(method, target, body=body or None, headers=sent)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        except (OSError, http.client.HTTPException) as exc:
            message = f"application {subdomain!r} did not answer: {exc}".encode()
            return 502, [("Content-Type", "text/plain")], message
        finally:
            conn.close()

    return forward
