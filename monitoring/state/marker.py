"""The history marker: a small file in the project saying "this model has a state store", so a lost one is noticed.

A job that finds no state store cannot tell "first run" from "the store was deleted" by the
store alone. The marker, written when a store is created (and rewritten when it moves), lives
in the project directory apart from the store (``.cml-monitor/state/<model hash>.json``), so it
survives ``rm var/state.db``, a wiped ``var/`` and a ``state.url`` pointed elsewhere. Removing it
is how a person says "start over" (``cml-monitor state rebuild`` rewrites it).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

MARKER_DIR = ".cml-monitor/state"


@dataclass(frozen=True)
class HistoryMarker:
    """What the project knows about a model's state store."""

    model: str
    store_id: str
    url: str
    """The store's URL as configured, password removed."""
    project_id: str | None
    created_ms: int


def marker_path(project_root: str | os.PathLike[str], model: str) -> Path:
    """Where the marker of ``model`` lives (the name is a hash: model names may hold any character)."""
    digest = hashlib.sha256(model.encode("utf-8")).hexdigest()[:16]
    return Path(project_root) / MARKER_DIR / f"{digest}.json"


def read_marker(project_root: str | os.PathLike[str], model: str) -> HistoryMarker | None:
    """The marker, or None when there is none.

    A marker that exists but cannot be read still proves history: it comes back with
    ``store_id`` ``"unreadable"`` rather than as None.
    """
    path = marker_path(project_root, model)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
        return HistoryMarker(
            str(data["model"]), str(data["store_id"]), str(data["url"]), data.get("project_id"), int(data["created_ms"])
        )
    except (ValueError, KeyError, TypeError):
        return HistoryMarker(model, "unreadable", "?", None, 0)


def write_marker(project_root: str | os.PathLike[str], marker: HistoryMarker) -> Path:
    """Write the marker atomically (a reader sees the old or the new file, never half of one)."""
    path = marker_path(project_root, marker.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(asdict(marker), out, sort_keys=True)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def remove_marker(project_root: str | os.PathLike[str], model: str) -> None:
    marker_path(project_root, model).unlink(missing_ok=True)
