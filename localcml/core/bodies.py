"""Request bodies read as CML's API gateway reads them: lenient on form (numbers as strings, unknown fields), strict on types."""

from __future__ import annotations

import json
import logging
import re
from pathlib import PurePosixPath
from typing import Any

from localcml.core.errors import invalid
from localcml.core.spec import definitions, ref_name

log = logging.getLogger(__name__)
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_INT = re.compile(r"^[+-]?\d+$")


class _Reader:
    """Reads one request body as grpc-gateway's proto3 JSON parser does, collecting every problem."""

    def __init__(self) -> None:
        self.problems: list[str] = []
        self.ignored: list[str] = []

    def value(self, value: Any, schema: dict, where: str) -> Any:
        if value is None:  # proto3 JSON: null means "not set"
            return None
        ref = ref_name(schema)
        if ref:
            return self.message(value, ref, where)
        kind, fmt = schema.get("type"), schema.get("format")
        if kind == "string" and fmt in ("int64", "uint64"):
            return self._int64(value, where)
        if kind == "string":
            if not isinstance(value, str):
                return self._problem(f"{where}: expected a string, got {type(value).__name__} {value!r}")
            if "enum" in schema and value not in schema["enum"]:
                return self._problem(f"{where}: {value!r} is not one of {schema['enum']}")
            return value
        if kind == "integer":
            if isinstance(value, bool) or not (
                isinstance(value, int) or (isinstance(value, str) and _INT.match(value))
            ):
                return self._problem(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
            return int(value)
        if kind == "number":  # proto3 JSON: a number, or a string holding one ("2", "2.5")
            if isinstance(value, bool) or not (
                isinstance(value, (int, float)) or (isinstance(value, str) and _FLOAT.match(value.strip()))
            ):
                return self._problem(f"{where}: expected a number, got {type(value).__name__} {value!r}")
            return float(value)
        if kind == "boolean":
            if not isinstance(value, bool):
                return self._problem(f"{where}: expected true or false, got {value!r}")
            return value
        if kind == "array":
            if not isinstance(value, list):
                return self._problem(f"{where}: expected an array, got {type(value).__name__}")
            return [self.value(item, schema.get("items", {}), f"{where}[{i}]") for i, item in enumerate(value)]
        if kind == "object":
            if not isinstance(value, dict):
                return self._problem(f"{where}: expected an object (a map), got {type(value).__name__} {value!r}")
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                return {key: self.value(item, extra, f"{where}.{key}") for key, item in value.items()}
            return value
        return value

    def _int64(self, value: Any, where: str) -> Any:
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, str) and _INT.match(value))):
            return self._problem(f"{where}: expected an int64 (a number or a string of digits), got {value!r}")
        return str(int(value))  # proto3 JSON writes int64 as a string

    def message(self, value: Any, name: str, where: str) -> Any:
        schema = definitions()[name]
        if "enum" in schema:
            if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(schema["enum"]):
                return schema["enum"][value]  # proto3 JSON also accepts an enum's number
            return self.value(value, {k: v for k, v in schema.items() if k != "$ref"}, where)
        if not isinstance(value, dict):
            return self._problem(f"{where}: expected a {name} object, got {type(value).__name__}")
        props = schema.get("properties", {})
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key not in props:
                self.ignored.append(f"{where}.{key}" if where else key)
                continue
            out[key] = self.value(item, props[key], f"{where}.{key}" if where else key)
        return out

    def _problem(self, text: str) -> None:
        self.problems.append(text)
        return None


def problems(body: Any, definition: str) -> list[str]:
    """Every way ``body`` breaks the definition's types (unknown fields are not problems, as in CML)."""
    reader = _Reader()
    reader.message(body, definition, "")
    return reader.problems


def read_body(body: Any, definition: str, operation: str = "") -> dict:
    """The body as the handlers see it, read the way CML's API gateway reads it.

    Like grpc-gateway's proto3 JSON parser: numbers may come as strings (``"cpu": "2"``), int64
    fields as numbers or strings (returned as strings), enums as names or numbers; fields the
    definition lacks are dropped (logged at debug level, naming them). Wrong types are refused.

    Args:
        body: the parsed JSON body.
        definition: the request definition, e.g. ``CreateModelDeploymentRequest``.
        operation: the operation id, for the log line.

    Returns:
        The body with known fields only, numbers as numbers.

    Raises:
        ApiError: INVALID_ARGUMENT listing every type mismatch.
    """
    if definition == "object":
        return body if isinstance(body, dict) else {}
    reader = _Reader()
    out = reader.message(body, definition, "")
    if reader.problems:
        raise invalid(f"invalid {definition} body: " + "; ".join(reader.problems))
    if reader.ignored:
        log.debug(
            "%s: ignoring field(s) %s unknown to %s", operation or definition, ", ".join(reader.ignored), definition
        )
    return out


def env_map(value: Any, where: str) -> dict[str, str]:
    """An environment given as a map (create requests) or a JSON string (update_job), as a dict.

    Raises:
        ApiError: INVALID_ARGUMENT when it is not a JSON object of strings.
    """
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise invalid(f"{where}: expected a JSON object of strings, got {value!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid(f"{where}: expected a JSON object whose values are strings, got {value!r}")
    return dict(value)


def project_path(value: Any, where: str) -> str:
    """A file path inside the project: relative, without ``..`` parts.

    Raises:
        ApiError: INVALID_ARGUMENT naming the field and the path.
    """
    path = PurePosixPath(str(value or ""))
    if not value or path.is_absolute() or ".." in path.parts or "\\" in str(value) or "\0" in str(value):
        raise invalid(f"{where}: {value!r} must be a path inside the project (relative, without '..')")
    return str(value)


def json_object(raw: bytes, what: str) -> dict:
    """The JSON object in a request body (``{}`` when empty).

    Raises:
        ApiError: INVALID_ARGUMENT naming ``what`` when it is not a JSON object.
    """
    try:
        value = json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"{what}: the body is not JSON") from None
    if not isinstance(value, dict):
        raise invalid(f"{what}: the body must be a JSON object")
    return value
