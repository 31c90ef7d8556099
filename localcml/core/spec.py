"""The compact CML API v2 contract (``spec/api_v2.json``): definitions, operations and routes."""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, unquote

SPEC_PATH = Path(__file__).resolve().parents[1] / "spec" / "api_v2.json"
_PARAM = re.compile(r"\{([^}]+)\}")


@dataclass(frozen=True)
class Operation:
    """One REST operation: ``GET /api/v2/projects/{project_id}/jobs`` is ``ListJobs``."""

    operation_id: str
    method: str
    path: str
    path_params: tuple[str, ...]
    query_params: tuple[str, ...]
    form_params: tuple[str, ...]
    """``multipart/form-data`` fields (file uploads)."""
    body: str | None
    """Definition name of the request body, if the operation takes one."""
    response: str
    """Definition name of the 200 response (``""``: none, e.g. a file download)."""
    summary: str
    regex: re.Pattern

    @property
    def name(self) -> str:
        """The client method name, ``create_model_deployment``."""
        return method_name(self.operation_id)

    def url(self, values: dict[str, str]) -> str:
        """The path with each ``{param}`` replaced by its (URL-quoted) value."""
        return _PARAM.sub(lambda m: quote(str(values[m.group(1)]), safe=""), self.path)


def method_name(operation_id: str) -> str:
    """``CreateModelDeployment`` -> ``create_model_deployment``: the client's method name."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", operation_id).lower()


@functools.lru_cache(maxsize=1)
def spec() -> dict:
    """The parsed compact spec (written by ``tools/extract_spec.py``)."""
    return json.loads(SPEC_PATH.read_text())


def definitions() -> dict[str, dict]:
    return spec()["definitions"]


def ref_name(schema: dict) -> str | None:
    """``Job`` for ``{"$ref": "#/definitions/Job"}``, else None."""
    ref = schema.get("$ref")
    return ref.rsplit("/", 1)[-1] if ref else None


def _regex(path: str) -> re.Pattern:
    out, pos, n = [], 0, 0
    for m in _PARAM.finditer(path):
        out.append(re.escape(path[pos : m.start()]))
        out.append(f"(?P<p{n}>[^/:]+)")
        pos, n = m.end(), n + 1
    out.append(re.escape(path[pos:]))
    return re.compile("^" + "".join(out) + "$")


@functools.lru_cache(maxsize=1)
def operations() -> dict[str, Operation]:
    """Every operation of the compact spec, by operationId."""
    ops: dict[str, Operation] = {}
    for path, methods in spec()["paths"].items():
        for method, op in methods.items():
            params = op["parameters"]
            body = next((ref_name(p["schema"]) or "object" for p in params if p["in"] == "body"), None)
            ops[op["operationId"]] = Operation(
                operation_id=op["operationId"],
                method=method.upper(),
                path=path,
                path_params=tuple(_PARAM.findall(path)),
                query_params=tuple(p["name"] for p in params if p["in"] == "query"),
                form_params=tuple(p["name"] for p in params if p["in"] == "formData"),
                body=body,
                response=ref_name(op["response"]) or "",
                summary=op.get("summary", ""),
                regex=_regex(path),
            )
    return ops


@functools.lru_cache(maxsize=1)
def _routing_order() -> tuple[Operation, ...]:
    """Operations with more literal path text first: ``/projects/batch`` before ``/projects/{project_id}``."""
    return tuple(sorted(operations().values(), key=lambda o: (len(o.path_params), -len(_PARAM.sub("", o.path)))))


def match(method: str, path: str) -> tuple[Operation, dict[str, str]] | None:
    """The operation serving ``method path`` and its path parameters, or None."""
    for op in _routing_order():
        if op.method != method:
            continue
        m = op.regex.match(path)
        if m:
            values = [unquote(v) for v in m.groups()]
            return op, dict(zip(op.path_params, values))
    return None
