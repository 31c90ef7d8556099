"""The model endpoint: ``POST /model`` routed by access key to a free replica of the live deployment.

Each replica serves one request at a time. A request waits up to ``busy_timeout`` seconds for a
free replica, then gets CML's HTTP 429 ``model.busy``; so does a request while every replica of
the live deployment is dead and being restarted (CML documents no other answer for a model with
no available replica). Bodies over 5 MB get 413. The fault point
``endpoint`` (see ``localcml.faults``) can refuse, delay, drop or garble an answer.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import time
from collections.abc import Mapping

from cmlbase.logs import KV
from localcml.core.state import ApiState
from localcml.faults import Fault, FaultPlan
from localcml.models.deployments import Deployer

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
BUSY_TIMEOUT_SECONDS = 30.0
REPLICA_TIMEOUT_SECONDS = 600.0
FORWARDED_HEADERS = ("Content-Type", "Authorization", "Accept")
Reply = tuple[int, bytes]
#: The reply that means: close the connection without answering (an injected ``drop``).
DROP: Reply = (0, b"")
#: The endpoint's error code and message for an injected HTTP status.
FAULT_REPLIES = {
    429: ("model.busy", "all replicas are busy; retry later"),
    500: ("model.error", "the model failed"),
    502: ("model.replica_error", "the model replica did not answer"),
    503: ("model.unavailable", "the model service is unavailable"),
    504: ("model.timeout", "the model did not answer in time"),
}


def injected(status: int, when: str = "") -> Reply:
    """The endpoint's refusal for an injected status (the message says it was injected)."""
    code, text = FAULT_REPLIES.get(status, ("fault.injected", f"HTTP {status}"))
    return error(status, code, f"{text} ({code}, fault injected{when})")


def error(status: int, code: str, message: str) -> Reply:
    """A refusal in the endpoint's envelope: ``{"success": false, "error": {"code", "message"}}``."""
    return status, json.dumps({"success": False, "error": {"code": code, "message": message}}).encode()


class ModelRouter:
    """Routes model calls to replicas.

    Args:
        state: the API state (models by access key).
        deployer: knows each model's live deployment and its replicas.
        busy_timeout: seconds to wait for a free replica before answering 429 ``model.busy``.
        faults: the workspace's fault plan (fault point ``endpoint``).
    """

    def __init__(
        self,
        state: ApiState,
        deployer: Deployer,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        faults: FaultPlan | None = None,
    ):
        self.state = state
        self.deployer = deployer
        self.busy_timeout = busy_timeout
        self.faults = faults
        self._by_key: dict[str, str] = {}

    def _model(self, access_key: str) -> dict | None:
        """The model with this access key: one indexed read per call once seen (not a scan of every model)."""
        known = self._by_key.get(access_key)
        model = self.state.get("model", known) if known else None
        if model is not None and model["access_key"] == access_key:
            return model
        self._by_key = {m["access_key"]: m["id"] for m in self.state.list("model")}
        known = self._by_key.get(access_key)
        return self.state.get("model", known) if known else None

    def handle(self, headers: Mapping[str, str], body: bytes) -> Reply:
        """Answer one ``POST /model`` (``body`` already read; the caller enforces the size limit)."""
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error(400, "request.invalid", "request body is not JSON")
        if not isinstance(payload, dict) or not isinstance(payload.get("accessKey"), str):
            return error(400, "request.invalid", 'expected {"accessKey": "<model access key>", "request": {...}}')
        model = self._model(payload["accessKey"])
        if model is None:
            return error(404, "model.not_found", "no model has this access key")
        pool = self.deployer.live_pool(model["id"])
        if pool is None:
            return error(503, "model.not_deployed", f"model {model['name']!r} has no deployed deployment")
        fault = self.faults.take("endpoint") if self.faults is not None else None
        if fault is not None and fault.action in ("status", "drop", "refuse"):
            return self._refuse(fault, headers, body)
        replica = pool.acquire(self.busy_timeout)
        if replica is None:
            restarting = pool.restarting()
            log.warning("model busy %s", KV(model=model["name"], waited_s=self.busy_timeout, restarting=restarting))
            if restarting:
                why = f"{restarting} of its {len(pool.replicas)} replicas are being restarted, the others were busy"
            else:
                why = "all replicas stayed busy"
            return error(
                429,
                "model.busy",
                f"{why}: no replica of model {model['name']!r} was free for {self.busy_timeout:g} s; "
                "retry later or add replicas",
            )
        try:
            reply = self._forward(replica.port, headers, body)
        finally:
            pool.release(replica)
        return reply if fault is None else self._garble(fault, reply)

    def _refuse(self, fault: Fault, headers: Mapping[str, str], body: bytes) -> Reply:
        """Injected faults that stop the request before any replica sees it."""
        if fault.action == "drop":
            return DROP
        if fault.action == "refuse":  # a replica that is gone, as while a deployment is replaced
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                closed_port = probe.getsockname()[1]
            return self._forward(closed_port, headers, body)
        return injected(int(fault.status or 503))

    @staticmethod
    def _garble(fault: Fault, reply: Reply) -> Reply:
        """Injected faults that strike after the model answered (the prediction was recorded)."""
        if fault.action == "status-after":
            return injected(int(fault.status or 500), " after the model answered")
        if fault.action == "drop-after":
            return DROP
        if fault.action == "delay":
            time.sleep(fault.seconds or 0)  # the answer is late in real time: the caller's timeout may fire
            return reply
        if fault.action == "not-json":
            return 200, b"<html><body>502 Bad Gateway (fault injected)</body></html>"
        if fault.action == "no-uuid" and reply[0] == 200:
            data = json.loads(reply[1])
            if isinstance(data.get("response"), dict):
                data["response"].pop("uuid", None)
            return 200, json.dumps(data).encode()
        return reply

    def _forward(self, port: int | None, headers: Mapping[str, str], body: bytes) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", port or 0, timeout=REPLICA_TIMEOUT_SECONDS)
        try:
            sent = {h: headers[h] for h in FORWARDED_HEADERS if headers.get(h)}
            conn.request("POST", "/model", body=body, headers=sent)
            resp = conn.getresponse()
            return resp.status, resp.read()
        except (OSError, http.client.HTTPException) as exc:
            return error(502, "model.replica_error", f"the model replica did not answer: {exc}")
        finally:
            conn.close()
