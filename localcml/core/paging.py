"""List semantics of API v2: JSON ``search_filter`` (case-sensitive substring), ``sort``, page tokens."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Iterable
from typing import Any

from localcml.core.errors import invalid

DEFAULT_PAGE_SIZE = 10
#: Filter keys on the ShortUser that created an object (projects, jobs, models, builds).
USER_FILTER = ("creator.email", "creator.name", "creator.username")
Getter = Callable[[dict], Any]


def field(obj: dict, dotted: str) -> Any:
    """``obj["creator"]["username"]`` for ``creator.username``; None when any part is missing."""
    value: Any = obj
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def parse_filter(text: str | None, keys: Iterable[str] | None) -> dict[str, str]:
    """The ``search_filter`` JSON object, checked against the endpoint's supported keys.

    Args:
        text: the query parameter (a JSON object as a string), or None.
        keys: supported keys; None accepts any key (endpoints that document none).

    Raises:
        ApiError: not a JSON object, or a key the endpoint does not support.
    """
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise invalid(f"search_filter {text!r} is not valid JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise invalid(f'search_filter {text!r} must be a JSON object such as {{"name":"foo"}}')
    allowed = None if keys is None else set(keys)
    for key in parsed:
        if allowed is not None and key not in allowed:
            raise invalid(f"search_filter key {key!r} is not supported here; supported keys: {sorted(allowed)}")
    return {k: _text(v) for k, v in parsed.items()}


def matches(obj: dict, filters: dict[str, str], getters: dict[str, Getter] | None = None) -> bool:
    """True when every filter value is a (case-sensitive) substring of the object's field."""
    getters = getters or {}
    for key, wanted in filters.items():
        value = getters[key](obj) if key in getters else field(obj, key)
        if wanted not in _text(value):
            return False
    return True


def apply_sort(items: list[dict], text: str | None, keys: Iterable[str]) -> list[dict]:
    """Items ordered by ``+a,-b`` (stable; the default order is creation order).

    Raises:
        ApiError: a sort key the endpoint does not support.
    """
    if not text:
        return items
    allowed = set(keys)
    specs = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        desc = part.startswith("-")
        key = part.lstrip("+-")
        if key not in allowed:
            raise invalid(f"sort key {key!r} is not supported here; supported keys: {sorted(allowed) or 'none'}")
        specs.append((key, desc))
    out = list(items)
    if specs:  # ties (same millisecond) fall back to creation order, in the last key's direction
        out.sort(key=lambda o: o.get("_seq", 0), reverse=specs[-1][1])
    for key, desc in reversed(specs):
        out.sort(key=lambda o: _text(field(o, key)), reverse=desc)
    return out


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _offset(token: str) -> int:
    try:
        data = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        offset = int(data["offset"])
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise invalid(f"page_token {token!r} is not a token this server issued") from None
    if offset < 0:
        raise invalid(f"page_token {token!r} is not a token this server issued")
    return offset


def paginate(items: list[dict], page_size: Any, page_token: str | None) -> tuple[list[dict], str]:
    """One page and the next page's token (``""`` on the last page)."""
    try:
        size = int(page_size) if page_size not in (None, "") else 0
    except ValueError:
        raise invalid(f"page_size {page_size!r} must be an integer") from None
    if size < 0:
        raise invalid(f"page_size {size} must not be negative")
    size = size or DEFAULT_PAGE_SIZE
    start = _offset(page_token) if page_token else 0
    page = items[start : start + size]
    return page, _token(start + size) if start + size < len(items) else ""


def list_page(
    items: list[dict],
    query: dict[str, str],
    *,
    filter_keys: Iterable[str] | None,
    sort_keys: Iterable[str] = (),
    getters: dict[str, Getter] | None = None,
) -> tuple[list[dict], str]:
    """Filter, sort and paginate ``items`` as the query parameters ask."""
    filters = parse_filter(query.get("search_filter"), filter_keys)
    chosen = [o for o in items if matches(o, filters, getters)]
    chosen = apply_sort(chosen, query.get("sort"), sort_keys)
    return paginate(chosen, query.get("page_size"), query.get("page_token"))
