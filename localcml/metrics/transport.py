"""The SDK's way to the workspace's metrics service: one HTTP call per operation, as in CML.

The service is ``http://monitoring.<CDSW_DOMAIN>`` (CML: ``https://monitoring.<domain>``); the
call carries ``Authorization: Bearer $CDSW_APIV2_KEY``. Connections are pooled and kept alive,
shared by the threads of the process (a fork gets its own pool).
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

import urllib3

from localcml.core import hosts
from localcml.core.errors import ConfigError

API_KEY_ENV = "CDSW_APIV2_KEY"
#: Seconds one metrics call may take (a large read included).
TIMEOUT_S = 120.0
POOL_SIZE = 32
_lock = threading.Lock()
_pool: tuple[int, urllib3.PoolManager] | None = None


class MetricsServiceError(ConnectionError):
    """The metrics service could not be reached or failed (5xx): the call may be retried."""


class MetricsWriteError(MetricsServiceError):
    """A decorated model call ran, but its prediction's record could not be written (the call fails)."""


def _manager() -> urllib3.PoolManager:
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            _pool = (os.getpid(), urllib3.PoolManager(num_pools=2, maxsize=POOL_SIZE, retries=False))
        return _pool[1]


def service_url() -> str:
    """``http://monitoring.<CDSW_DOMAIN>``.

    Raises:
        ConfigError: ``CDSW_DOMAIN`` is not set (outside a local engine or activated shell).
    """
    domain = os.environ.get(hosts.DOMAIN_ENV)
    if not domain:
        raise ConfigError(
            f"{hosts.DOMAIN_ENV} is not set: the model metrics service is found from it "
            '(set for local engines, and by `eval "$(cml-monitor local env)"`)'
        )
    return f"http://{hosts.METRICS_SERVICE}.{domain}"


def call(path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST ``body`` to ``path`` of the metrics service; returns the JSON answer.

    Raises:
        ValueError: the service refused the call (4xx), with its message (e.g. an unknown uuid).
        MetricsServiceError: unreachable, or a 5xx answer.
    """
    hosts.install()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {os.environ.get(API_KEY_ENV, '')}"}
    url = service_url() + path
    try:
        resp = _manager().request(
            "POST", url, body=json.dumps(body, allow_nan=False).encode(), headers=headers, timeout=TIMEOUT_S
        )
    except urllib3.exceptions.HTTPError as exc:
        raise MetricsServiceError(f"model metrics service {url} unreachable: {exc}") from exc
    try:
        data = json.loads(resp.data or b"{}")
    except ValueError:
        data = {"message": resp.data[:200].decode("utf-8", "replace")}
    if resp.status >= 500:
        raise MetricsServiceError(f"model metrics service {path}: HTTP {resp.status}: {data.get('message')}")
    if resp.status >= 400:
        raise ValueError(data.get("message") or f"model metrics service {path}: HTTP {resp.status}")
    return data
