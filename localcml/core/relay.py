"""One HTTP request relayed to a server of the workspace on loopback (applications, the MLflow server)."""

from __future__ import annotations

import http.client
from collections.abc import Mapping

from localcml.core.hosts import LOOPBACK

#: Headers that describe one hop, not the request (RFC 9110 section 7.6.1).
HOP_HEADERS = ("connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te", "trailer")


def relay(
    port: int, method: str, target: str, headers: Mapping[str, str], body: bytes, timeout: float, what: str
) -> tuple[int, list, bytes]:
    """``(status, headers, body)`` of ``port``'s answer; 502 naming ``what`` when it does not answer."""
    conn = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
    try:
        conn.request(method, target, body=body or None, headers=dict(headers))
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    except (OSError, http.client.HTTPException) as exc:
        return 502, [("Content-Type", "text/plain")], f"{what} did not answer: {exc}".encode()
    finally:
        conn.close()
