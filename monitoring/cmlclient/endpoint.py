"""A client for CML's model endpoint protocol: ``{"accessKey", "request"}`` in, prediction and uuid out."""

from __future__ import annotations

import json
import threading
from typing import Any

import requests

from monitoring.cmlclient.retry import RetryPolicy
from monitoring.core.errors import DataError

#: CML's model endpoint refuses requests over 5 MB; we refuse them first, with a clearer message.
MAX_BODY_BYTES = 5 * 1024 * 1024


class ModelEndpoint:
    """Calls one model through the workspace's model service, one keep-alive session per thread.

    Args:
        url: ``https://modelservice.<domain>/model`` inside CML; the daemon's ``/model`` locally.
        access_key: the model's access key (never logged).
        api_key: the model API key sent as ``Authorization: Bearer`` when authentication is on.
        timeout_s: per-request timeout.
        retry: retry policy (429 ``model.busy``, 5xx, timeouts).
    """

    def __init__(self, url: str, access_key: str, api_key: str | None, timeout_s: float, retry: RetryPolicy):
        self.url = url
        self.access_key = access_key
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retry = retry
        self._local = threading.local()

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["Content-Type"] = "application/json"
            if self.api_key:
                session.headers["Authorization"] = f"Bearer {self.api_key}"
            self._local.session = session
        return session

    def encode(self, request: dict[str, Any]) -> bytes:
        """The request body CML expects, checked against the endpoint's 5 MB limit.

        Raises:
            DataError: the body is over the limit or the request is not JSON-serialisable.
        """
        try:
            body = json.dumps({"accessKey": self.access_key, "request": request}).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise DataError(f"model request is not JSON-serialisable: {exc}") from exc
        if len(body) > MAX_BODY_BYTES:
            raise DataError(
                f"model request of {len(body)} bytes is over the model endpoint's limit of "
                f"{MAX_BODY_BYTES} bytes (5 MB); it was not sent: send fewer or smaller features"
            )
        return body

    def _post(self, body: bytes) -> requests.Response:
        response = self._session().post(self.url, data=body, timeout=self.timeout_s)
        response.raise_for_status()
        return response

    def predict(self, request: dict[str, Any]) -> tuple[Any, str]:
        """Score one request; returns ``(prediction, uuid)``.

        Raises:
            DataError: the request is over 5 MB (not sent), or the endpoint answered 200 without
                ``success`` or without a uuid.
            PlatformError: HTTP errors after retries (429 ``model.busy`` and 5xx are retried; the
                endpoint's message is included).
        """
        body = self.encode(request)
        reply = self.retry.call("call the model endpoint", self._post, body)
        try:
            out = reply.json()
        except ValueError as exc:  # requests' JSONDecodeError
            raise DataError(f"model endpoint {self.url} answered with a body that is not JSON: {exc}") from exc
        response = out.get("response") if isinstance(out, dict) else None
        if not isinstance(out, dict) or not out.get("success") or not isinstance(response, dict):
            raise DataError(f"model endpoint {self.url} answered without success/response: {str(out)[:200]}")
        uuid = response.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            raise DataError(
                "model endpoint answered without a prediction uuid; is the predict function "
                "decorated with cdsw.model_metrics?"
            )
        return response.get("prediction"), uuid

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
