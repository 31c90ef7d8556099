"""``cmlapi.models``-style classes generated from the compact API v2 spec (swagger-codegen conventions).

Each definition becomes a class with ``swagger_types``, ``attribute_map``, a keyword constructor
that accepts only the spec's fields, ``to_dict()`` and equality. ``serialize`` and ``deserialize``
turn models into JSON-ready data and JSON data into models, as the generated ``ApiClient`` does.
"""

from __future__ import annotations

import inspect
import pprint
import re
from datetime import date, datetime
from typing import Any

from localcml.core.spec import definitions, ref_name

_PRIMITIVES = {"str": str, "int": int, "float": float, "bool": bool}
_LIST = re.compile(r"^list\[(.*)\]$")
_DICT = re.compile(r"^dict\(([^,]*), (.*)\)$")


def type_name(schema: dict) -> str:
    """The swagger-codegen type string of a property schema (``str``, ``list[Job]``, ``dict(str, str)``)."""
    ref = ref_name(schema)
    if ref:
        return ref
    kind, fmt = schema.get("type"), schema.get("format")
    if kind == "string":
        return "datetime" if fmt == "date-time" else "date" if fmt == "date" else "str"
    if kind == "integer":
        return "int"
    if kind == "number":
        return "float"
    if kind == "boolean":
        return "bool"
    if kind == "array":
        return f"list[{type_name(schema.get('items', {}))}]"
    if kind == "object":
        extra = schema.get("additionalProperties")
        return f"dict(str, {type_name(extra)})" if isinstance(extra, dict) else "object"
    return "object"


class ApiModel:
    """Base of every generated model class."""

    swagger_types: dict[str, str] = {}
    attribute_map: dict[str, str] = {}
    allowable_values: tuple[str, ...] = ()

    def __init__(self, *args: Any, **kwargs: Any):
        """Fields by position in the spec's order (as the generated classes take them), or by name."""
        names = list(self.swagger_types)
        if len(args) > len(names):
            raise TypeError(
                f"{type(self).__name__}.__init__() takes {len(names)} positional arguments but {len(args)} were given"
            )
        for name, value in zip(names, args):
            if name in kwargs:
                raise TypeError(f"{type(self).__name__}.__init__() got multiple values for argument {name!r}")
            kwargs[name] = value
        unknown = sorted(set(kwargs) - set(self.swagger_types))
        if unknown:
            raise TypeError(f"{type(self).__name__}.__init__() got an unexpected keyword argument {unknown[0]!r}")
        self.discriminator = None
        for attr in self.swagger_types:
            setattr(self, attr, kwargs.get(attr))

    def to_dict(self) -> dict:
        """Every attribute (None included), nested models as dicts, like the generated ``to_dict``."""
        return {attr: _to_plain(getattr(self, attr, None)) for attr in self.swagger_types}

    def to_str(self) -> str:
        return pprint.pformat(self.to_dict())

    def __repr__(self) -> str:
        return self.to_str()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, type(self)) and self.__dict__ == other.__dict__

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = None  # mutable, like the generated classes


def _to_plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_to_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, ApiModel):
        return value.to_dict()
    return value


def _make_class(name: str, schema: dict) -> type[ApiModel]:
    props = schema.get("properties", {})
    attrs: dict[str, Any] = {
        "swagger_types": {p: type_name(s) for p, s in props.items()},
        "attribute_map": {p: p for p in props},
        "__doc__": f"CML API v2 model ``{name}`` (generated from the spec).",
        "__module__": "cmlapi.models",
    }
    params = [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for p in props]
    attrs["__signature__"] = inspect.Signature(params)
    if "enum" in schema:
        attrs["allowable_values"] = tuple(schema["enum"])
        for value in schema["enum"]:
            attrs[value] = value
    return type(name, (ApiModel,), attrs)


def build_classes() -> dict[str, type[ApiModel]]:
    """One class per definition of the compact spec, by definition name."""
    return {name: _make_class(name, schema) for name, schema in definitions().items()}


MODELS: dict[str, type[ApiModel]] = build_classes()


def serialize(obj: Any) -> Any:
    """JSON-ready data for a request body: models by ``attribute_map`` with None fields left out."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize(v) for v in obj]
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {k: serialize(v) for k, v in obj.items()}
    if isinstance(obj, ApiModel):
        return {
            obj.attribute_map[a]: serialize(getattr(obj, a))
            for a in obj.swagger_types
            if getattr(obj, a, None) is not None
        }
    raise TypeError(f"cannot serialise {type(obj).__name__} into a request body")


def _parse_datetime(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"failed to parse {text!r} as a date-time") from exc


def deserialize(data: Any, kind: str) -> Any:
    """Turn response JSON into the type ``kind`` names (a model name, ``list[...]``, ``str``...)."""
    if data is None:
        return None
    m = _LIST.match(kind)
    if m:
        return [deserialize(v, m.group(1)) for v in data]
    m = _DICT.match(kind)
    if m:
        return {k: deserialize(v, m.group(2)) for k, v in data.items()}
    if kind in _PRIMITIVES:
        return _PRIMITIVES[kind](data)
    if kind == "datetime":
        return _parse_datetime(data)
    if kind == "date":
        return _parse_datetime(data).date()
    if kind == "object":
        return data
    cls = MODELS[kind]
    if not cls.swagger_types:  # enums and empty messages come back as plain data
        return data
    kwargs = {
        attr: deserialize(data[key], cls.swagger_types[attr]) for attr, key in cls.attribute_map.items() if key in data
    }
    return cls(**kwargs)
