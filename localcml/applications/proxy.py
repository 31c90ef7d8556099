"""Requests to ``<subdomain>.<domain>`` forwarded to the application's own port on loopback."""

from __future__ import annotations

from collections.abc import Mapping

from localcml.applications.backend import Applications
from localcml.core.relay import HOP_HEADERS, relay

FORWARD_TIMEOUT_SECONDS = 300.0


def forwarder(apps: Applications):
    """``forward(subdomain, method, target, headers, body) -> (status, headers, body)``; None: nothing serves it."""

    def forward(subdomain: str, method: str, target: str, headers: Mapping[str, str], body: bytes):
        app = apps.by_subdomain(subdomain)
        port = apps.port(app["id"]) if app is not None else None
        if port is None:
            return None
        sent = {k: v for k, v in headers.items() if k.lower() not in HOP_HEADERS}
        return relay(port, method, target, sent, body, FORWARD_TIMEOUT_SECONDS, f"application {subdomain!r}")

    return forward
