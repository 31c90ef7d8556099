"""Matplotlib charts for the monitoring report, drawn on the Agg canvas (no pyplot global state)."""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import matplotlib
import matplotlib.dates as mdates
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import PercentFormatter

from monitoring.config.metric_registry import METRICS
from monitoring.domain.windows.results import WindowMetrics

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
WIDTH_IN, DPI = 11.0, 110
MAX_ANNOTATED_CELLS = 240  # write PSI values into heatmap cells only while they stay legible
UTC = timezone.utc


@dataclass(frozen=True)
class Line:
    """A horizontal reference line (a threshold) on a chart."""

    value: float
    label: str
    style: str = "--"


@dataclass(frozen=True)
class Marker:
    """A vertical event marker (a redeploy or rollback) at ``ms``."""

    ms: int
    label: str


@dataclass(frozen=True)
class Segment:
    """One stretch of time a version served: [start_ms, end_ms), with the reason it was deployed."""

    version: str
    start_ms: int
    end_ms: int
    reason: str


#: How the page and the charts name a metric (others: capitalised).
TITLES = {
    "mae": "MAE",
    "rmse": "RMSE",
    "mape": "MAPE",
    "r2": "R²",
    "roc_auc": "ROC AUC",
    "f1": "F1",
    "log_loss": "Log-loss",
    "bias": "Bias (mean error)",
}


def metric_title(metric: str) -> str:
    """A metric's name for people: ``MAE``, ``ROC AUC``, ``Accuracy``."""
    return TITLES.get(metric, metric.replace("_", " ").capitalize())


def _dt(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def plain(text: str) -> str:
    """Text matplotlib shows literally (``$`` would otherwise start mathtext).

    Args:
        text: a label from the data (version, feature, reason).
    Returns:
        the text with every ``$`` escaped.
    """
    return str(text).replace("$", r"\$")


def _figure(height: float) -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH_IN, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.grid(True, color="#e4e4e4", linewidth=0.8)
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return fig, ax


def _time_axis(ax, span: tuple[int, int]) -> None:
    locator = mdates.AutoDateLocator(tz=UTC, minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    ax.set_xlim(_dt(span[0]), _dt(span[1]))
    ax.set_xlabel("time (UTC)")


def _markers(ax, markers: Sequence[Marker]) -> None:
    for m in markers:
        ax.axvline(_dt(m.ms), color="#444", linestyle=":", linewidth=1.2, zorder=1)
        ax.text(
            _dt(m.ms),
            0.98,
            " " + plain(m.label),
            transform=ax.get_xaxis_transform(),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color="#333",
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
        )


def _legend(fig: Figure, handles: list, labels: list[str]) -> None:
    """One legend row (or more) above the axes, so it never hides data."""
    if handles:
        fig.legend(handles, labels, loc="outside upper left", ncols=min(len(handles), 6), fontsize=8.5, frameon=False)


def png_bytes(fig: Figure) -> bytes:
    """Render a figure as PNG bytes (no Software/URL metadata, so the page holds no links).

    Args:
        fig: a figure from one of the chart functions.
    Returns:
        the PNG file's bytes.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _runs(rows: Sequence[WindowMetrics], keep: Callable[[WindowMetrics], bool]) -> list[list[WindowMetrics]]:
    """Split rows (one version, by start) into contiguous runs, so lines do not bridge gaps."""
    runs: list[list[WindowMetrics]] = []
    for w in rows:
        if not keep(w):
            runs.append([])
        elif runs and runs[-1] and w.start_ms <= runs[-1][-1].end_ms:
            runs[-1].append(w)
        else:
            runs.append([w])
    return [r for r in runs if r]


def metric_chart(
    windows: Mapping[str, Sequence[WindowMetrics]],
    colours: Mapping[str, str],
    metric: str,
    band: Callable[[WindowMetrics], tuple[float, float] | None],
    band_label: str,
    lines: Sequence[Line],
    markers: Sequence[Marker],
    span: tuple[int, int],
) -> Figure:
    """A metric per window, one series per version, with its confidence band, thresholds and redeploys.

    Args:
        windows: version label -> its windows ordered by start.
        colours: version label -> colour.
        metric: the metric drawn (a registry name).
        band: a window's confidence interval (None: none to draw).
        band_label: the band's legend entry.
        lines: thresholds to draw; markers: redeploys and rollbacks; span: x range in ms.
    Returns:
        the figure.
    """
    fig, ax = _figure(4.4)
    spec = METRICS.get(metric)
    unit = spec is not None and (spec.low, spec.high) == (0.0, 1.0)
    lows = [line.value for line in lines]
    banded = False
    for version, rows in windows.items():
        c = colours[version]
        for i, run in enumerate(_runs(rows, lambda w: w.value(metric) is not None and w.labelled > 0)):
            x = [_dt((w.start_ms + w.end_ms) / 2) for w in run]
            bands = [band(w) or (math.nan, math.nan) for w in run]
            if not all(math.isnan(lo) for lo, _ in bands):
                banded = True
                lows += [lo for lo, _ in bands if not math.isnan(lo)]
                if len(run) == 1:  # a band needs two points: show a lone window's interval as a whisker
                    ax.vlines(x, bands[0][0], bands[0][1], color=c, alpha=0.35, linewidth=6)
                else:
                    ax.fill_between(
                        x, [lo for lo, _ in bands], [hi for _, hi in bands], color=c, alpha=0.18, linewidth=0
                    )
            values = [w.value(metric) for w in run]
            lows += values
            ax.plot(
                x,
                values,
                color=c,
                marker="o",
                markersize=3.5,
                linewidth=1.6,
                label=f"version {plain(version)}" if i == 0 else None,
            )
    handles, labels = ax.get_legend_handles_labels()
    if banded:
        handles.append(Patch(color="#888", alpha=0.3, linewidth=0))
        labels.append(band_label)
    for line in lines:
        handles.append(ax.axhline(line.value, color="#222", linestyle=line.style, linewidth=1.1, zorder=2))
        labels.append(plain(line.label))
    _markers(ax, markers)
    _legend(fig, handles, labels)
    if unit:
        ax.set_ylim(max(0.0, math.floor((min(lows, default=0.5) - 0.05) * 20) / 20), 1.01)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel(metric_title(metric))
    _time_axis(ax, span)
    return fig


def coverage_chart(
    windows: Mapping[str, Sequence[WindowMetrics]],
    colours: Mapping[str, str],
    markers: Sequence[Marker],
    span: tuple[int, int],
) -> Figure:
    """Label coverage (labelled / predictions) per window as bars, coloured by version.

    Args:
        windows: version label -> its windows; colours: version -> colour; markers and span as above.
    Returns:
        the figure.
    """
    fig, ax = _figure(3.0)
    by_start: dict[int, list[tuple[str, WindowMetrics]]] = {}
    for version, rows in windows.items():
        for w in rows:
            by_start.setdefault(w.start_ms, []).append((version, w))
    bars: dict[str, tuple[list, list, list]] = {v: ([], [], []) for v in windows}
    for group in by_start.values():
        for i, (version, w) in enumerate(group):  # windows of two versions in one period share the slot
            width = (w.end_ms - w.start_ms) * 0.85 / len(group)
            x, height, widths = bars[version]
            x.append(_dt(w.start_ms + i * width))
            height.append(w.labelled / w.predictions if w.predictions else 0.0)
            widths.append(timedelta(milliseconds=width))
    for version, (x, height, widths) in bars.items():
        if x:
            ax.bar(x, height, width=widths, align="edge", color=colours[version], label=f"version {plain(version)}")
    _markers(ax, markers)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("labelled / predictions")
    _legend(fig, *ax.get_legend_handles_labels())
    _time_axis(ax, span)
    return fig


def timeline_chart(segments: Sequence[Segment], colours: Mapping[str, str], span: tuple[int, int]) -> Figure:
    """Which version served when: one lane per version, a bar per deployment labelled with its reason.

    Args:
        segments: deployments in order; colours: version -> colour; span: x range in ms.
    Returns:
        the figure.
    """
    lanes = list(dict.fromkeys(s.version for s in segments))
    fig, ax = _figure(0.9 + 0.45 * len(lanes))
    for s in segments:
        y = lanes.index(s.version)
        ax.barh(
            y,
            timedelta(milliseconds=max(s.end_ms - s.start_ms, 1)),
            left=_dt(s.start_ms),
            height=0.6,
            color=colours[s.version],
            edgecolor="white",
        )
        ax.text(
            _dt(s.start_ms),
            y,
            "  " + plain(s.reason),
            va="center",
            ha="left",
            fontsize=8,
            color="white",
            fontweight="bold",
            clip_on=True,
        )
    ax.set_yticks(range(len(lanes)), [plain(v) for v in lanes])
    ax.set_ylim(len(lanes) - 0.4, -0.6)
    ax.grid(False, axis="y")
    ax.set_ylabel("version")
    _time_axis(ax, span)
    return fig


def drift_chart(
    columns: Sequence[tuple[str, WindowMetrics]],
    features: Sequence[str],
    max_psi: float | None,
    categorical: Collection[str] = (),
) -> Figure:
    """PSI heatmap: one row per feature, one column per window (white lines where the version changes).

    Args:
        columns: (version, window) pairs ordered by start; features: rows to show.
        max_psi: the drift policy's limit, marked on the colour bar (None when no drift policy).
        categorical: features that are categories (their rows are labelled so).
    Returns:
        the figure.
    """
    psi = np.array([[(w.drift.get(f) or {}).get("psi", np.nan) for _, w in columns] for f in features], dtype=float)
    psi = np.where(np.isfinite(psi), psi, np.nan)
    fig, ax = _figure(1.4 + 0.38 * len(features))
    ax.grid(False)
    top = max(float(np.nanmax(psi)) if np.isfinite(psi).any() else 0.0, 2 * (max_psi or 0.25))
    cmap = matplotlib.colormaps["YlOrRd"].with_extremes(bad="#e6e6e6")
    image = ax.imshow(np.ma.masked_invalid(psi), aspect="auto", cmap=cmap, vmin=0, vmax=top, interpolation="nearest")
    bar = fig.colorbar(image, ax=ax, pad=0.01, fraction=0.04)
    bar.set_label("PSI")
    if max_psi is not None:
        bar.ax.axhline(max_psi, color="black", linewidth=1.5)
    if psi.size <= MAX_ANNOTATED_CELLS:
        for (r, c), v in np.ndenumerate(psi):
            if not math.isnan(v):
                ax.text(
                    c, r, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v > 0.6 * top else "#222"
                )
    for c in range(1, len(columns)):
        if columns[c][0] != columns[c - 1][0]:
            ax.axvline(c - 0.5, color="white", linewidth=3)
    step = max(1, math.ceil(len(columns) / 14))
    ticks = list(range(0, len(columns), step))
    ax.set_xticks(
        ticks, [_dt(columns[i][1].start_ms).strftime("%m-%d %H:%M") for i in ticks], rotation=30, ha="right", fontsize=8
    )
    names = [plain(f) + (" (categorical)" if f in categorical else "") for f in features]
    ax.set_yticks(range(len(features)), names, fontsize=9)
    ax.set_xlabel("window start (UTC)")
    return fig


def latency_chart(
    points: Mapping[str, Sequence[tuple[int, float | None, float | None]]],
    colours: Mapping[str, str],
    markers: Sequence[Marker],
    span: tuple[int, int],
) -> Figure:
    """Prediction latency p50 (solid) and p95 (dashed) per window, one colour per version.

    Args:
        points: version -> [(window midpoint ms, p50 ms, p95 ms)]; colours, markers, span as above.
    Returns:
        the figure.
    """
    fig, ax = _figure(3.2)
    for version, rows in points.items():
        x = [_dt(ms) for ms, _, _ in rows]
        for idx, style, name in ((1, "-", "p50"), (2, "--", "p95")):
            y = [np.nan if r[idx] is None else float(r[idx]) for r in rows]
            ax.plot(
                x,
                y,
                color=colours[version],
                linestyle=style,
                marker="o",
                markersize=3,
                label=f"{plain(version)} {name}",
            )
    _markers(ax, markers)
    ax.set_ylim(bottom=0)
    ax.set_ylabel("latency (ms)")
    _legend(fig, *ax.get_legend_handles_labels())
    _time_axis(ax, span)
    return fig
