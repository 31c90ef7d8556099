"""Request bodies checked against the API v2 definitions: unknown fields and wrong types are refused."""

from __future__ import annotations

from typing import Any

from localcml.core.errors import invalid
from localcml.core.spec import definitions, ref_name


def _problems(value: Any, schema: dict, where: str) -> list[str]:
    if value is None:  # proto3 JSON: null means "not set"
        return []
    ref = ref_name(schema)
    if ref:
        return _check_object(value, ref, where)
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "string":
        if fmt == "int64" and isinstance(value, int) and not isinstance(value, bool):
            return []
        if fmt == "int64" and isinstance(value, str) and not value.lstrip("-").isdigit():
            return [f"{where}: expected an int64 (a string of digits), got {value!r}"]
        if not isinstance(value, str):
            return [f"{where}: expected a string, got {type(value).__name__} {value!r}"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{where}: {value!r} is not one of {schema['enum']}"]
        return []
    if kind == "integer":
        ok = (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, str) and value.lstrip("-").isdigit()
        )
        return [] if ok else [f"{where}: expected an integer, got {type(value).__name__} {value!r}"]
    if kind == "number":
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{where}: expected a number, got {type(value).__name__} {value!r}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{where}: expected true or false, got {value!r}"]
    if kind == "array":
        if not isinstance(value, list):
            return [f"{where}: expected an array, got {type(value).__name__}"]
        out: list[str] = []
        for i, item in enumerate(value):
            out += _problems(item, schema.get("items", {}), f"{where}[{i}]")
        return out
    if kind == "object":
        if not isinstance(value, dict):
            return [f"{where}: expected an object (a map), got {type(value).__name__} {value!r}"]
        extra = schema.get("additionalProperties")
        out = []
        if isinstance(extra, dict):
            for key, item in value.items():
                out += _problems(item, extra, f"{where}.{key}")
        return out
    return []


def _check_object(value: Any, name: str, where: str) -> list[str]:
    schema = definitions()[name]
    if "enum" in schema:
        return _problems(value, schema, where)
    if not isinstance(value, dict):
        return [f"{where}: expected a {name} object, got {type(value).__name__}"]
    props = schema.get("properties", {})
    out: list[str] = []
    for key, item in value.items():
        if key not in props:
            out.append(f"{where}: unknown field {key!r} in {name}")
        else:
            out += _problems(item, props[key], f"{where}.{key}" if where else key)
    return out


def problems(body: Any, definition: str) -> list[str]:
    """Every way ``body`` breaks the definition (empty when it conforms)."""
    return _check_object(body, definition, "")


def check_body(body: Any, definition: str) -> dict:
    """The body, if it conforms to the named definition.

    Raises:
        ApiError: INVALID_ARGUMENT listing every unknown field and type mismatch.
    """
    found = problems(body, definition)
    if found:
        raise invalid(f"invalid {definition} body: " + "; ".join(p.lstrip(": ") for p in found))
    return body
