"""Paths and database URLs from config: they stay inside the project."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Annotated

from pydantic import AfterValidator


def project_path(value: str) -> str:
    """A path from config must stay inside the project: relative, with no ``..`` part."""
    path = PurePosixPath(value.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (len(value) > 1 and value[1] == ":"):
        raise ValueError(f"{value!r} must be a relative path inside the project (no leading '/' and no '..')")
    return value


def sqlite_path_inside(url: str | None) -> str | None:
    """SQLite URLs name a file inside the project; other databases (PostgreSQL) are addressed by URL."""
    if url and url.startswith("sqlite:///"):
        project_path(url[len("sqlite:///") :])
    return url


#: A config string that must be a relative path inside the project.
InsidePath = Annotated[str, AfterValidator(project_path)]
