"""The report renders in headless Chromium: charts visible, title in the DOM, hostile text inert."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from matplotlib.image import imread

from monitoring.app.report import write_report
from tests.chromium import command, find_chromium
from tests.report.report_support import HOSTILE, NOW, config, fill

pytestmark = pytest.mark.heavy  # headless Chromium

TIMEOUT_S = 120
V1_BLUE = np.array([0x1F, 0x77, 0xB4]) / 255  # plots.PALETTE[0]: the first version's colour


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def _run(chromium: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    cmd = command(chromium, tmp_path / "chromium-profile", *args)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}"
    return proc


def test_report_renders_in_headless_chromium(chromium, store, tmp_path):
    fill(store, HOSTILE)
    page = write_report(config(), store, tmp_path / "out", now_ms=NOW)
    shot = tmp_path / "screenshot.png"
    _run(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page.as_uri())
    dom = _run(chromium, tmp_path, "--dump-dom", page.as_uri()).stdout

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2000, 1280)
    assert pixels.std() > 0.05, "the screenshot is blank"
    blue = (np.abs(pixels - V1_BLUE).max(axis=-1) < 0.03).sum()
    assert blue > 2_000, f"only {blue} pixels of the v1 series colour: the embedded charts did not render"
    assert "<title>cml-monitor report: &lt;script&gt;alert" in dom
    assert "<h1>cml-monitor report: &lt;script&gt;" in dom
    assert "<script" not in dom.lower() and '<img src="x"' not in dom
    assert dom.count("<img ") == 4 and dom.count('<img src="data:image/png;base64,') == 4
