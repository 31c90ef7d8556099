"""Which file system holds a path: what a full or read-only disk is named by, so a person knows where to look."""

from __future__ import annotations

import os
import re
from pathlib import Path


def mount_point(path: str | os.PathLike[str]) -> str:
    """The mount point of the file system holding ``path`` (the path itself need not exist).

    Linux's mount table is read first: a bind mount (a read-only volume of a container) shares
    its device with its parent, so only the table knows where it starts.
    """
    current = Path(os.path.abspath(path))
    while not current.exists():
        current = current.parent
    current = current.resolve()
    mounts = [m for m in _mount_table() if m == current or m in current.parents]
    if mounts:
        return str(max(mounts, key=lambda m: len(m.parts)))
    while not os.path.ismount(current):
        current = current.parent
    return str(current)


def _mount_table() -> list[Path]:
    """Mount points of this process's mount namespace (none where there is no ``/proc/self/mounts``)."""
    try:
        lines = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    octal = re.compile(r"\\([0-7]{3})")  # the table writes a space as \040
    return [Path(octal.sub(lambda m: chr(int(m.group(1), 8)), ln.split()[1])) for ln in lines if len(ln.split()) > 1]
