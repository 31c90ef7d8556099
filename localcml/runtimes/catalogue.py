"""The runtime catalogue: CML's ML Runtimes (editors, kernels, editions), all run by the local interpreter.

CML offers one image per editor x kernel x edition; a project names one by ``image_identifier``
(``runtime_identifier`` on jobs, builds and applications). Locally every entry runs on the
Python that runs the workspace: its description says so, and ``ML_RUNTIME_*`` variables in the
engines name the chosen entry. Cloudera code that filters ``list_runtimes`` (``{"kernel":
"Python 3.12", "edition": "Standard", "editor": "Workbench"}``) finds what it looks for.
"""

from __future__ import annotations

import sys

from localcml.core.errors import invalid
from localcml.core.state import ApiState

RUNTIME_KEYS = ("image_identifier", "editor", "kernel", "edition", "description", "full_version")
#: The release every catalogue entry carries (CML's runtime images are versioned by release).
RUNTIME_VERSION = "2025.01.1-b1"
REGISTRY = "docker.repository.cloudera.com/cloudera/cdsw"
EDITORS = (("PBJ Workbench", "pbj-workbench"), ("JupyterLab", "pbj-jupyterlab"))
PYTHONS = ("3.9", "3.10", "3.11", "3.12")
EDITIONS = (("Standard", "standard"), ("Nvidia GPU", "cuda"))
#: Older, non-PBJ Workbench runtimes some Cloudera AMPs still filter for (``"editor": "Workbench"``).
LEGACY_EDITOR = ("Workbench", "workbench")


def _entry(editor: str, slug: str, python: str, edition: str, edition_slug: str, version: str) -> dict:
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    return {
        "image_identifier": f"{REGISTRY}/ml-runtime-{slug}-python{python}-{edition_slug}:{version}",
        "editor": editor,
        "kernel": f"Python {python}",
        "edition": edition,
        "description": (
            f"{editor} Python {python} {edition} (local workspace: runs on this machine's Python {here}, "
            f"{sys.executable})"
        ),
        "full_version": version,
        "status": "ENABLED",
        "register_user_id": 0,
    }


def catalogue() -> list[dict]:
    """Every runtime the local workspace lists, in CML's ``Runtime`` shape."""
    out = []
    for editor, slug in EDITORS:
        for python in PYTHONS:
            for edition, edition_slug in EDITIONS:
                out.append(_entry(editor, slug, python, edition, edition_slug, RUNTIME_VERSION))
    for python in PYTHONS:
        out.append(_entry(LEGACY_EDITOR[0], LEGACY_EDITOR[1], python, "Standard", "standard", "2024.10.1-b12"))
    return out


def engine_variables(identifier: str | None, state: ApiState) -> dict[str, str]:
    """``ML_RUNTIME_*`` variables of an engine running ``identifier`` (empty when it names none)."""
    runtime = state.get("runtime", identifier) if identifier else None
    if runtime is None:
        return {}
    return {
        "ML_RUNTIME_EDITOR": runtime["editor"],
        "ML_RUNTIME_KERNEL": runtime["kernel"],
        "ML_RUNTIME_EDITION": runtime["edition"],
        "ML_RUNTIME_FULL_VERSION": runtime["full_version"],
        "ML_RUNTIME_SHORT_VERSION": runtime["full_version"].split("-")[0],
        "ML_RUNTIME_DESCRIPTION": runtime["description"],
    }


class Runtimes:
    """Registered runtimes and the check that jobs, builds and applications name one."""

    def __init__(self, state: ApiState):
        self.state = state

    def register_catalogue(self) -> list[dict]:
        """Register every catalogue entry not yet registered; returns the catalogue."""
        entries = catalogue()
        for runtime in entries:
            if self.state.get("runtime", runtime["image_identifier"]) is None:
                self.state.insert("runtime", "", runtime, ident=runtime["image_identifier"])
        return entries

    def default(self) -> dict:
        """The entry matching this interpreter: PBJ Workbench, Standard edition."""
        here = f"Python {sys.version_info.major}.{sys.version_info.minor}"
        entries = catalogue()
        return next((r for r in entries if r["kernel"] == here), entries[0])

    def require(self, identifier: str | None, what: str) -> None:
        """Raises ApiError (INVALID_ARGUMENT) unless ``identifier`` names a registered runtime."""
        if not identifier:
            raise invalid(
                f"runtime_identifier is required for a {what} in an ML Runtimes project; "
                f"list_runtimes gives the choices, e.g. {self.default()['image_identifier']!r}"
            )
        if self.state.get("runtime", identifier) is None:
            raise invalid(
                f"runtime_identifier {identifier!r} is not a registered runtime; list_runtimes gives the "
                f"choices, e.g. {self.default()['image_identifier']!r}"
            )
