"""A small validator for Swagger 2.0 definitions: field names, types, formats and enums; unknown fields fail."""

from __future__ import annotations

import json
import re
from typing import Any

from localcml.core.spec import SPEC_PATH

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_INT = re.compile(r"^-?\d+$")


def load() -> dict:
    """The compact spec (``localcml/spec/api_v2.json``, its one copy; never /work/shared)."""
    return json.loads(SPEC_PATH.read_text())


def _ref(schema: dict) -> str | None:
    return schema["$ref"].rsplit("/", 1)[-1] if "$ref" in schema else None


def errors(spec: dict, value: Any, schema: dict | str, where: str = "$") -> list[str]:
    """Every way ``value`` breaks ``schema`` (a definition name or a schema dict)."""
    defs = spec["definitions"]
    if isinstance(schema, str):
        schema = {"$ref": f"#/definitions/{schema}"}
    name = _ref(schema)
    if name:
        schema = defs[name]
    kind, fmt = schema.get("type"), schema.get("format")
    if "properties" in schema or (kind == "object" and "additionalProperties" not in schema):
        if not isinstance(value, dict):
            return [f"{where}: expected object {name or ''}, got {type(value).__name__}"]
        props = schema.get("properties", {})
        out = [f"{where}.{k}: field not in {name or 'the schema'}" for k in value if k not in props]
        for key, item in value.items():
            if key in props:
                out += errors(spec, item, props[key], f"{where}.{key}")
        return out
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected a map, got {type(value).__name__}"]
        return [e for k, v in value.items() for e in errors(spec, v, schema["additionalProperties"], f"{where}.{k}")]
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected array, got {type(value).__name__}"]
        return [e for i, v in enumerate(value) for e in errors(spec, v, schema["items"], f"{where}[{i}]")]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{where}: expected string ({fmt or 'text'}), got {type(value).__name__} {value!r}"]
        if fmt == "int64" and not _INT.match(value):
            return [f"{where}: expected an int64 as a string of digits, got {value!r}"]
        if fmt == "date-time" and not _RFC3339.match(value):
            return [f"{where}: expected an RFC 3339 date-time, got {value!r}"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{where}: {value!r} not in enum {schema['enum']}"]
        return []
    if kind == "integer":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected integer, got {type(value).__name__} {value!r}"]
    if kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected number, got {type(value).__name__} {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected boolean, got {value!r}"]
    return [f"{where}: schema without a type: {schema}"]


def response_definition(spec: dict, operation_id: str) -> str:
    for methods in spec["paths"].values():
        for op in methods.values():
            if op["operationId"] == operation_id:
                return _ref(op["response"])
    raise KeyError(operation_id)
