"""The workspace's registered ML Runtime (one, matching the Python that runs the workspace)."""

from __future__ import annotations

import sys

from localcml.core.errors import invalid
from localcml.core.paging import list_page
from localcml.core.state import ApiState, public

RUNTIME_KEYS = ("image_identifier", "editor", "kernel", "edition", "description", "full_version")
RUNTIME_VERSION = "2025.01.1-b1"


def default_runtime() -> dict:
    """A Runtime like CML's PBJ Workbench Python runtimes, for this interpreter's version."""
    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "image_identifier": f"local/cml-monitor/ml-runtime-pbj-workbench-python{py}-standard:{RUNTIME_VERSION}",
        "editor": "PBJ Workbench",
        "kernel": f"Python {py}",
        "edition": "Standard",
        "description": f"Local workspace runtime: Python {py} ({sys.executable})",
        "full_version": RUNTIME_VERSION,
        "status": "ENABLED",
        "register_user_id": 0,
    }


class Runtimes:
    """Registered runtimes: ``list_runtimes`` and the check that jobs and builds name one."""

    def __init__(self, state: ApiState):
        self.state = state

    def register_default(self) -> dict:
        runtime = default_runtime()
        if self.state.get("runtime", runtime["image_identifier"]) is None:
            self.state.insert("runtime", "", runtime, ident=runtime["image_identifier"])
        return runtime

    def require(self, identifier: str | None, what: str) -> None:
        """Raises ApiError (INVALID_ARGUMENT) unless ``identifier`` names a registered runtime."""
        known = [r["image_identifier"] for r in self.state.list("runtime")]
        if not identifier:
            raise invalid(
                f"runtime_identifier is required for a {what} in an ML Runtimes project; "
                f"list_runtimes gives the choices: {known}"
            )
        if identifier not in known:
            raise invalid(f"runtime_identifier {identifier!r} is not a registered runtime; known: {known}")

    def list_runtimes(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page(self.state.list("runtime"), query, filter_keys=RUNTIME_KEYS, sort_keys=RUNTIME_KEYS)
        return {"runtimes": [public(r) for r in page], "next_page_token": token}
