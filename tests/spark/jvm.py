"""Finding the JVMs a test left running."""

from __future__ import annotations

from pathlib import Path


def java_processes_of(directory: Path) -> list[int]:
    """Live JVMs whose command line names ``directory``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if "java" in cmdline and str(directory) in cmdline and state != "Z":
            found.append(int(entry.name))
    return found
