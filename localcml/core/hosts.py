"""The workspace's host names: ``modelservice.<domain>``, ``monitoring.<domain>``, ``<subdomain>.<domain>``.

In CML, a workbench at ``ml-1234.example.site`` serves models at ``modelservice.ml-1234...``,
applications at ``<subdomain>.ml-1234...`` and the metrics service at ``monitoring.ml-1234...``.
Cloudera code derives those names from ``CDSW_API_URL`` or ``CDSW_DOMAIN``. Locally the domain
is ``127.0.0.1:<port>``, and no resolver knows ``modelservice.127.0.0.1``; ``install`` teaches
this process's resolver that every ``<name>.<domain host>`` is the loopback address. Engines,
replicas, applications and ``cml-monitor local env`` shells get it at start-up (the shim's
``sitecustomize``); the workspace routes each request by its ``Host`` header.
"""

from __future__ import annotations

import os
import socket
import threading

LOOPBACK = "127.0.0.1"
DOMAIN_ENV = "CDSW_DOMAIN"
#: Host names the workspace serves itself (the rest of ``<name>.<domain>`` are applications).
MODEL_SERVICE = "modelservice"
METRICS_SERVICE = "monitoring"
_lock = threading.Lock()
_installed = False


def domain_host(domain: str | None = None) -> str:
    """The host part of the workspace domain (``127.0.0.1`` for ``127.0.0.1:8100``); ``""`` if unknown."""
    domain = os.environ.get(DOMAIN_ENV, "") if domain is None else domain
    return domain.rsplit(":", 1)[0] if domain.count(":") == 1 else domain


def service_name(host: str, domain: str | None = None) -> str | None:
    """``modelservice`` for ``modelservice.127.0.0.1[:port]``; None when ``host`` is not a workspace sub-name."""
    bare = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    base = domain_host(domain)
    if not base or not bare.lower().endswith("." + base.lower()):
        return None
    return bare[: -len(base) - 1].lower() or None


def _local(host: object) -> bool:
    """Whether ``host`` is a workspace name: under ``$CDSW_DOMAIN``, or under the loopback address itself
    (``modelservice.127.0.0.1`` can name nothing else: no DNS name ends in an IP address)."""
    if not isinstance(host, str):
        return False
    return service_name(host) is not None or service_name(host, LOOPBACK) is not None


def install() -> None:
    """Resolve every ``<name>.<CDSW_DOMAIN host>`` to loopback in this process (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        original_getaddrinfo = socket.getaddrinfo
        original_gethostbyname = socket.gethostbyname

        def getaddrinfo(host, *args, **kwargs):
            return original_getaddrinfo(LOOPBACK if _local(host) else host, *args, **kwargs)

        def gethostbyname(host):
            return LOOPBACK if _local(host) else original_gethostbyname(host)

        socket.getaddrinfo = getaddrinfo
        socket.gethostbyname = gethostbyname
        _installed = True
