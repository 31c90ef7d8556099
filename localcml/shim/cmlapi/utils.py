"""``cmlapi.utils``: ``Cursor`` iterates every page of any ``list_*`` method."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any


class Cursor:
    """``Cursor(client.list_jobs, project_id=pid, search_filter=...).items()`` yields every item.

    Args:
        list_method: a bound ``list_*`` method of ``CMLServiceApi``.
        **kwargs: its arguments; ``page_size`` is re-sent with each ``page_token``.
    """

    def __init__(self, list_method: Callable[..., Any], **kwargs: Any):
        self.list_method = list_method
        self.kwargs = kwargs

    def pages(self) -> Iterator[Any]:
        token, seen = None, set()
        while True:
            kwargs = dict(self.kwargs)
            if token:
                kwargs["page_token"] = token
            page = self.list_method(**kwargs)
            yield page
            token = getattr(page, "next_page_token", None)
            if not token or token in seen:
                return
            seen.add(token)

    def items(self) -> Iterator[Any]:
        for page in self.pages():
            for attr in page.swagger_types:
                if attr != "next_page_token" and page.swagger_types[attr].startswith("list["):
                    yield from getattr(page, attr) or []
