"""The metrics service as the server calls it: a path and a JSON body in, a status and JSON out."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from localcml.core.errors import NoSpaceError
from localcml.metrics.responses import MetricsApi, MetricsError
from localcml.metrics.urls import LATENCY_EXEMPT, ROUTES

log = logging.getLogger(__name__)
Reply = tuple[int, bytes]
#: HTTP 507 Insufficient Storage: the store's disk is full (retryable for the SDK, as every 5xx).
OUT_OF_SPACE = 507


def _error(status: int, message: str) -> Reply:
    return status, json.dumps({"error": message, "message": message}).encode()


def answerer(api: MetricsApi) -> Callable[[str, bytes, Callable[[str], None]], Reply | None]:
    """``answer(path, body, latency) -> (status, body)``, None for a path the service does not have."""

    def answer(path: str, raw: bytes, latency: Callable[[str], None]) -> Reply | None:
        name = ROUTES.get(path)
        if name is None:
            return None
        if path not in LATENCY_EXEMPT:
            latency("latency.metrics")
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, UnicodeDecodeError):
            return _error(400, f"{path}: the body is not JSON")
        if not isinstance(body, dict):
            return _error(400, f"{path}: the body must be a JSON object")
        try:
            return 200, json.dumps(getattr(api, name)(body)).encode()  # stored records are returned as stored
        except MetricsError as exc:
            return _error(exc.status, exc.message)
        except NoSpaceError as exc:  # names the file system; the store works again once space is freed
            log.warning("metrics call %s refused: %s", path, exc)
            return _error(OUT_OF_SPACE, str(exc))
        except OSError as exc:  # the store's disk or server went away
            log.exception("metrics call %s failed", path)
            return _error(503, f"{path}: the model metrics store is unavailable: {exc}")

    return answer
