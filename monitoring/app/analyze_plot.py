"""The metric-per-window PNG of ``analyze``, drawn here or by a helper process that loads matplotlib meanwhile.

``python -m monitoring.app.analyze_plot`` imports matplotlib at once, then reads one JSON
request ``{"series", "path", "title", "metric"}`` on stdin and draws it: started before a large dump
is decoded, its imports (about a third of a second) run on another core when one is free.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

#: Seconds the helper may take to draw once it has the request, before the plot is drawn here.
HELPER_TIMEOUT_S = 60


def metric_series(results: Sequence[Any], metric: str = "accuracy") -> dict[str, list[list[float]]]:
    """``{deployment CRN: [[window start ms, value], ...]}`` of the windows where ``metric`` is defined,
    every CRN present."""
    series: dict[str, list[list[float]]] = {r.deployment_crn: [] for r in results}
    for r in results:
        value = getattr(r, metric, None)
        if value is not None:
            series[r.deployment_crn].append([r.start_ms, value])
    return series


def draw_metric(
    series: dict[str, list[list[float]]], path: str | os.PathLike, title: str, metric: str = "accuracy"
) -> None:
    """Save a PNG of a metric per window, one line per deployment (Agg, no display needed).

    Args:
        series: ``metric_series`` output.
        path: the PNG file to write.
        title: plot title.
        metric: the metric's name (the y axis; a metric between 0 and 1 gets that range).
    """
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from monitoring.config.metric_registry import METRICS

    fig = Figure(figsize=(9, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for crn in sorted(series):
        points = series[crn]
        if points:
            x = np.array([p[0] for p in points], dtype="datetime64[ms]")
            ax.plot(x, [p[1] for p in points], marker="o", label=crn.rsplit("/", 1)[-1][:12] or "(no CRN)")
    if not any(series.values()):
        ax.text(0.5, 0.5, f"no window with a defined {metric}", ha="center", va="center", transform=ax.transAxes)
    elif len(series) > 1:
        ax.legend(title="deployment", fontsize="small")
    spec = METRICS.get(metric)
    if spec is not None and (spec.low, spec.high) == (0.0, 1.0):
        ax.set_ylim(0, 1.02)
    ax.set_ylabel(metric)
    ax.set_xlabel("window start (UTC)")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    fig.autofmt_xdate()
    fig.savefig(path)


def _idle_core() -> bool:
    """Whether a core is likely free: the 1-minute load is at least one below the usable cores.
    On a busy machine the helper would only repeat the interpreter's start and imports."""
    try:
        return os.getloadavg()[0] <= len(os.sched_getaffinity(0)) - 1
    except (AttributeError, OSError):  # no load average or affinity on this platform
        return False


def start_helper(force: bool = False) -> subprocess.Popen | None:
    """Start the helper process (it begins importing matplotlib) when a core is free or ``force``.

    Returns:
        The process, or None when no core is free or it cannot start (the plot is then drawn here).
    """
    if not (force or _idle_core()):
        return None
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "monitoring.app.analyze_plot"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
    except OSError:
        return None


def stop_helper(helper: subprocess.Popen | None) -> None:
    """End a helper that will get no request (the analysis failed)."""
    if helper is not None:
        helper.kill()
        helper.communicate()


def draw_with(
    helper: subprocess.Popen | None, series: dict, path: str | os.PathLike, title: str, metric: str = "accuracy"
) -> None:
    """Have the helper draw the plot, or draw it here when there is none or it fails.

    Args:
        helper: ``start_helper`` output.
        series: ``metric_series`` output.
        path: the PNG file to write.
        title: plot title.
        metric: the metric drawn.
    """
    if helper is not None:
        request = json.dumps({"series": series, "path": os.fspath(path), "title": title, "metric": metric}).encode()
        try:
            helper.communicate(request, timeout=HELPER_TIMEOUT_S)
            if helper.returncode == 0:
                return
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.communicate()
    draw_metric(series, path, title, metric)


def main() -> int:
    """Draw the one request read on stdin; 0 when the PNG is written (also with no request)."""
    # loaded before the request arrives: the point of the helper
    import matplotlib.backends.backend_agg
    import matplotlib.figure  # noqa: F401

    raw = sys.stdin.buffer.read()
    if not raw:
        return 0
    request = json.loads(raw)
    draw_metric(request["series"], request["path"], request["title"], request.get("metric", "accuracy"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
