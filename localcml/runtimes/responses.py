"""API v2 handlers of the runtimes service: the catalogue and its one add-on (Spark)."""

from __future__ import annotations

from localcml.core.paging import list_page
from localcml.core.state import ApiState, public
from localcml.datalake.addon import spark_addon
from localcml.runtimes.catalogue import RUNTIME_KEYS

ADDON_KEYS = ("identifier", "component", "display_name", "status")


class RuntimesApi:
    """Handlers ``handler(path, query, body) -> response dict`` for runtimes."""

    def __init__(self, state: ApiState):
        self.state = state

    def list_runtimes(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page(self.state.list("runtime"), query, filter_keys=RUNTIME_KEYS, sort_keys=RUNTIME_KEYS)
        return {"runtimes": [public(r) for r in page], "next_page_token": token}

    def list_runtime_addons(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page([spark_addon()], query, filter_keys=ADDON_KEYS, sort_keys=ADDON_KEYS)
        return {"runtime_addons": page, "next_page_token": token}
