"""Helpers for driving CmlApi against a real in-process local workspace.

``RecordingClient`` wraps a real ``cmlapi``-compatible client: it records every call (method,
positional and keyword arguments), can replace one method by a fault (which usually makes the
real call first), and wraps responses so that every response field the pipeline reads is
recorded against its API v2 definition.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from localcml.client.api import ApiException
from localcml.workspace import LocalWorkspace
from monitoring.cmlclient import Platform
from monitoring.cmlclient.api import CmlApi
from monitoring.cmlclient.retry import RetryPolicy
from tests.contract import swagger_check

SPEC = swagger_check.load()

FILES = {
    "scripts/ok.py": "print('ok')\n",
    "scripts/block.py": "import threading\nprint('blocking', flush=True)\nthreading.Event().wait()\n",
    "models/echo.py": "def predict(args):\n    return {'echo': args}\n",
    # Scored like our serving function: the metrics decorator adds the uuid. A "gate" fifo holds
    # the single replica busy until the test writes to it.
    "models/scored.py": (
        "import cdsw\n\n@cdsw.model_metrics\ndef predict(args):\n"
        "    if args.get('gate'):\n        with open(args['gate']) as f:\n            f.read()\n"
        "    return 1\n"
    ),
}


def make_tree(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@contextlib.contextmanager
def started_workspace(root: Path) -> Iterator[LocalWorkspace]:
    """A workspace on a fresh small project tree at ``root``, stopped on exit."""
    make_tree(root)
    workspace = LocalWorkspace(root / ".cml-local", root, busy_timeout=0.5, health_timeout=30.0).start()
    try:
        yield workspace
    finally:
        workspace.stop()


def _snake(operation_id: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation_id).lower()


#: python method name -> (operationId, request body definition or None, response definition or None)
OPERATIONS: dict[str, tuple[str, str | None, str | None]] = {}
for _methods in SPEC["paths"].values():
    for _op in _methods.values():
        _body = next(
            (
                p["schema"]["$ref"].rsplit("/", 1)[-1]
                for p in _op.get("parameters", [])
                if p.get("in") == "body" and "$ref" in p.get("schema", {})
            ),
            None,
        )
        _resp = _op["response"]["$ref"].rsplit("/", 1)[-1] if "$ref" in _op.get("response", {}) else None
        OPERATIONS[_snake(_op["operationId"])] = (_op["operationId"], _body, _resp)


@dataclass
class Call:
    method: str
    args: tuple
    kwargs: dict[str, Any]

    @property
    def body(self) -> Any:
        return self.kwargs.get("body")


class Watched:
    """A response object that records each attribute read as (definition, field)."""

    def __init__(self, obj: Any, definition: str, reads: set[tuple[str, str]]):
        self._obj, self._definition, self._reads = obj, definition, reads

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        self._reads.add((self._definition, name))
        value = getattr(self._obj, name)  # AttributeError for a field the class lacks: field() defaults
        schema = SPEC["definitions"][self._definition].get("properties", {}).get(name, {})
        return watch(value, schema, self._reads)


def watch(value: Any, schema: dict, reads: set[tuple[str, str]]) -> Any:
    """Wrap ``value`` (of type ``schema``) so that reads of its fields are recorded."""
    if value is None:
        return None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return Watched(value, name, reads) if SPEC["definitions"][name].get("properties") else value
    if schema.get("type") == "array" and isinstance(value, list):
        return [watch(v, schema.get("items", {}), reads) for v in value]
    return value


class RecordingClient:
    """Records every call to the wrapped client; ``faults`` replace methods: ``fault(real, *a, **kw)``."""

    def __init__(self, inner: Any, faults: dict[str, Callable[..., Any]] | None = None):
        self.inner = inner
        self.faults = dict(faults or {})
        self.calls: list[Call] = []
        self.reads: set[tuple[str, str]] = set()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if not callable(real):
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(Call(name, args, dict(kwargs)))
            fault = self.faults.get(name)
            result = fault(real, *args, **kwargs) if fault else real(*args, **kwargs)
            response = OPERATIONS.get(name, (None, None, None))[2]
            return watch(result, {"$ref": f"#/definitions/{response}"}, self.reads) if response else result

        return call

    def named(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]


# -- faults: each replaces one client method, ``fault(real, **kwargs)`` ---------------------------
def raising(exc):
    """A fault: the call fails without reaching the workspace."""

    def fault(real, **kwargs):
        raise exc

    return fault


def fail_first(times, exc):
    """A fault: the first ``times`` calls fail without reaching the workspace, later ones go through."""
    left = [times]

    def fault(real, **kwargs):
        if left[0] > 0:
            left[0] -= 1
            raise exc
        return real(**kwargs)

    return fault


def after_the_call_raise(exc):
    """A fault: the workspace does the work, then the answer is lost to ``exc``."""

    def fault(real, **kwargs):
        real(**kwargs)
        raise exc

    return fault


def changed(how):
    """A fault: the real response, altered by ``how(response)`` (a server quirk)."""

    def fault(real, **kwargs):
        result = real(**kwargs)
        how(result)
        return result

    return fault


def status_is(status):
    return changed(lambda obj: setattr(obj, "status", status))


def recased(attribute: str, how):
    """Statuses of the response (or of its ``attribute`` list) in another letter case."""

    def alter(result):
        for item in getattr(result, attribute) if attribute else [result]:
            item.status = how(item.status)

    return changed(alter)


def api_error(status: int, message: str, code: int = 13) -> ApiException:
    """An ``ApiException`` as the real client raises it: status, reason and a runtimeError body."""
    exc = ApiException(status=status, reason="error")
    exc.body = json.dumps({"error": message, "code": code, "message": message, "details": []})
    return exc


def fast_policy(sleeps: list[float] | None = None, attempts: int = 4) -> RetryPolicy:
    """Retries that never wait: each sleep is recorded instead."""
    sleeps = [] if sleeps is None else sleeps
    return RetryPolicy(attempts=attempts, initial_s=1.0, maximum_s=8.0, jitter_s=0.0, sleep=sleeps.append)


def short_sleep(seconds: float) -> None:
    """Polling a real process (build, replica): brief bounded waits only."""
    time.sleep(min(seconds, 0.05))


def platform_for(
    ws: LocalWorkspace,
    api: CmlApi,
    *,
    sleep: Callable[[float], None] = short_sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> Platform:
    """A Platform over ``api`` whose waits poll with ``sleep`` and measure time with ``monotonic``."""
    return Platform(
        api=api,
        metrics=None,
        clock=ws.clock,
        retry=api.retry,
        endpoint_url=ws.model_url,
        model_api_key=ws.model_api_key,
        sleep=sleep,
        monotonic=monotonic,
    )


def enter_workspace(monkeypatch: Any, ws: LocalWorkspace) -> dict[str, str]:
    """Make this process an engine of ``ws``: its CML variables, and the shim first on sys.path."""
    env = ws.engine_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for entry in reversed(env["PYTHONPATH"].split(os.pathsep)):
        monkeypatch.syspath_prepend(entry)
    return env
