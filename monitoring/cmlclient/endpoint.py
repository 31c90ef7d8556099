"""A client for CML's model endpoint protocol: ``{"accessKey", "request"}`` in, prediction and uuid out."""
from __future__ import annotations

import threading
from typing import Any

import requests

from monitoring.errors import DataError
from monitoring.cmlclient.retry import RetryPolicy

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

    def _post(self, request: dict[str, Any]) -> dict[str, Any]:
        response = self._session().post(self.url, json={"accessKey": self.access_key, "request": request},
                                        timeout=self.timeout_s)
        response.raise_for_status()
        return response.json()

    def predict(self, request: dict[str, Any]) -> tuple[Any, str]:
        """Score one request; returns ``(prediction, uuid)``.

        Raises:
            DataError: the endpoint answered 200 without ``success`` or without a uuid.
            PlatformError: HTTP errors after retries (the endpoint's message included).
        """
        try:
            out = self.retry.call("call the model endpoint", self._post, request)
        except ValueError as exc:  # requests' JSONDecodeError
            raise DataError(f"model endpoint {self.url} answered with a body that is not JSON: {exc}") from exc
        response = out.get("response") if isinstance(out, dict) else None
        if not isinstance(out, dict) or not out.get("success") or not isinstance(response, dict):
            raise DataError(f"model endpoint {self.url} answered without success/response: {str(out)[:200]}")
        uuid = response.get("uuid")
        if not isinstance(uuid, str) or not uuid:
            raise DataError("model endpoint answered without a prediction uuid; is the predict function "
                            "decorated with cdsw.model_metrics?")
        return response.get("prediction"), uuid

    def close(self) -> None:
        session = getattr(self._local, "session", None)
        if session is not None:
            session.close()
