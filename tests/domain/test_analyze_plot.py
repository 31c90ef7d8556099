"""The analyze plot: drawn by the helper process, or here when there is none or it fails."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

from monitoring.app.analyze_plot import draw_with, metric_series, start_helper, stop_helper

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SERIES = {"crn:a/dep-1": [[1_795_428_000_000, 0.9], [1_795_431_600_000, 0.7]], "crn:a/dep-2": []}


def test_series_keep_every_deployment_and_only_labelled_windows():
    results = [
        SimpleNamespace(deployment_crn="d1", start_ms=2, accuracy=0.5),
        SimpleNamespace(deployment_crn="d2", start_ms=1, accuracy=None),
        SimpleNamespace(deployment_crn="d1", start_ms=1, accuracy=0.75),
    ]
    assert metric_series(results) == {"d1": [[2, 0.5], [1, 0.75]], "d2": []}
    mae = [SimpleNamespace(deployment_crn="d1", start_ms=1, accuracy=None, mae=1200.5)]
    assert metric_series(mae, "mae") == {"d1": [[1, 1200.5]]} and metric_series(mae) == {"d1": []}


def test_the_helper_process_draws_the_png(tmp_path):
    helper = start_helper(force=True)
    assert helper is not None
    draw_with(helper, SERIES, tmp_path / "a.png", "Accuracy per window: test")
    helper = start_helper(force=True)
    draw_with(helper, {"d": [[1_795_428_000_000, 41_000.0]]}, tmp_path / "mae.png", "mae per window", "mae")
    assert helper.returncode == 0 and (tmp_path / "mae.png").read_bytes()[:8] == PNG_MAGIC
    assert helper.returncode == 0
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG_MAGIC


def test_without_a_helper_or_when_it_fails_the_png_is_drawn_here(tmp_path):
    draw_with(None, SERIES, tmp_path / "none.png", "t")
    assert (tmp_path / "none.png").read_bytes()[:8] == PNG_MAGIC
    failing = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.buffer.read(); sys.exit(3)"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    draw_with(failing, {}, tmp_path / "failed.png", "t")
    assert failing.returncode == 3
    assert (tmp_path / "failed.png").read_bytes()[:8] == PNG_MAGIC


def test_a_helper_given_no_request_is_ended():
    helper = start_helper(force=True)
    stop_helper(helper)
    assert helper.returncode is not None
