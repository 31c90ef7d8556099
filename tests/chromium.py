"""Headless Chromium for the page tests: where it is and the flags that keep it quiet and alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

#: Flags for every test run: headless, no sandbox (containers), no background traffic of its own.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def find_chromium() -> str:
    """The Chromium binary; fails the test (never skips it) when it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            "headless Chromium is not installed: install the Debian package `chromium` "
            "(apt-get install -y chromium); CI installs it for this test"
        )
    return found


def command(chromium: str, profile: Path, *args: str) -> list[str]:
    """A Chromium command line with the test flags and a throwaway profile."""
    return [chromium, *FLAGS, f"--user-data-dir={profile}", *args]
