"""Charts drawn on the server as inline SVG (no script, no asset from outside): metric, coverage, versions, drift."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from cmlbase.clock import iso_ms
from monitoring.app.dashboard.views import Bucket, DriftGrid, MetricInfo, number
from monitoring.config.metric_registry import metric_spec

WIDTH, LEFT, RIGHT = 1000, 110, 16
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22")
TICKS = 6
#: Characters of a feature name shown left of the heatmap (the cell tooltips hold the whole name).
FEATURE_LABEL = 16


@dataclass(frozen=True)
class Axis:
    """The shared time axis: every chart of a page maps ``[since_ms, until_ms)`` onto the same pixels."""

    since_ms: int
    until_ms: int

    def x(self, ms: float) -> float:
        span = max(1, self.until_ms - self.since_ms)
        return LEFT + (WIDTH - LEFT - RIGHT) * (min(max(ms, self.since_ms), self.until_ms) - self.since_ms) / span


def _n(v: float) -> str:
    return f"{v:.1f}"


def _svg(kind: str, height: int, title: str, body: list[str], **data: object) -> Markup:
    attrs = "".join(f' data-{k.replace("_", "-")}="{escape(v)}"' for k, v in data.items())
    return Markup(
        f'<svg class="chart {kind}" viewBox="0 0 {WIDTH} {height}" role="img" preserveAspectRatio="none"'
        f' width="100%" height="{height}"{attrs}><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def _time_ticks(axis: Axis, top: float, bottom: float) -> list[str]:
    out = []
    for i in range(TICKS + 1):
        ms = axis.since_ms + (axis.until_ms - axis.since_ms) * i / TICKS
        x = axis.x(ms)
        stamp = iso_ms(int(ms))[5:16].replace("T", " ")
        anchor = "start" if i == 0 else "end" if i == TICKS else "middle"
        out.append(f'<line class="grid" x1="{_n(x)}" x2="{_n(x)}" y1="{top}" y2="{bottom}"/>')
        out.append(f'<text class="tick" x="{_n(x)}" y="{bottom + 14}" text-anchor="{anchor}">{stamp}</text>')
    return out


def _scale(values: Sequence[float | None], info: MetricInfo) -> tuple[float, float]:
    """The y range: the values with a margin, kept inside the metric's possible range."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    spec = metric_spec(info.name)
    lo, hi = min(finite), max(finite)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 0.01)
    lo, hi = max(lo - pad, spec.low), min(hi + pad, spec.high)
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def _path(points: Sequence[tuple[float, float | None]]) -> str:
    """An SVG path through the points, broken where a value is missing."""
    out, pen = [], "M"
    for x, y in points:
        if y is None:
            pen = "M"
            continue
        out.append(f"{pen}{_n(x)},{_n(y)}")
        pen = "L"
    return " ".join(out)


def metric_chart(buckets: Sequence[Bucket], info: MetricInfo, axis: Axis, redeploys: Sequence[int]) -> Markup:
    """The metric per window with its bound band, the worst window of each bucket, thresholds and redeploys."""
    height, top, bottom = 260, 10, 230
    values = [b.value for b in buckets] + [b.low for b in buckets] + [b.high for b in buckets]
    values += [t["value"] for t in info.thresholds]
    lo, hi = _scale(values, info)

    def y(v: float) -> float:
        return bottom - (bottom - top) * (v - lo) / ((hi - lo) or 1.0)

    body = _time_ticks(axis, top, bottom)
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        body.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_n(y(v))}" y2="{_n(y(v))}"/>')
        body.append(f'<text class="tick" x="{LEFT - 6}" y="{_n(y(v) + 4)}" text-anchor="end">{number(v, 3)}</text>')
    band = [b for b in buckets if b.low is not None and b.high is not None]
    if band:
        mids = [(axis.x((b.start_ms + b.end_ms) / 2), b) for b in band]
        upper = " ".join(f"{_n(x)},{_n(y(min(max(b.high, lo), hi)))}" for x, b in mids)
        lower = " ".join(f"{_n(x)},{_n(y(min(max(b.low, lo), hi)))}" for x, b in reversed(mids))
        body.append(
            f'<polygon class="bound" points="{upper} {lower}"><title>{escape(_bound_title(info))}</title></polygon>'
        )
    mid = [(axis.x((b.start_ms + b.end_ms) / 2), b) for b in buckets]
    if any(b.windows > 1 for b in buckets):
        body.append(
            f'<path class="worst" d="{_path([(x, None if b.worst is None else y(b.worst)) for x, b in mid])}"/>'
        )
    body.append(f'<path class="value" d="{_path([(x, None if b.value is None else y(b.value)) for x, b in mid])}"/>')
    for t in info.thresholds:
        if t["value"] is None or not lo <= t["value"] <= hi:
            continue
        ty = y(t["value"])
        body.append(f'<line class="threshold" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_n(ty)}" y2="{_n(ty)}"/>')
        body.append(
            f'<text class="threshold-label" x="{WIDTH - RIGHT - 4}" y="{_n(ty - 4)}" text-anchor="end">'
            f"{escape(t['policy'])} {number(t['value'])}</text>"
        )
    for ms in redeploys:
        x = axis.x(ms)
        body.append(
            f'<line class="redeploy" x1="{_n(x)}" x2="{_n(x)}" y1="{top}" y2="{bottom}"><title>redeploy at {iso_ms(ms)}</title></line>'
        )
    title = f"{info.name} per window ({len(buckets)} points), {info.confidence:.0%} bounds, thresholds and redeploys"
    return _svg("metric", height, title, body, points=len(buckets), metric=info.name)


def _bound_title(info: MetricInfo) -> str:
    return f"{info.confidence:.0%} bounds of {info.name}"


def coverage_chart(buckets: Sequence[Bucket], axis: Axis) -> Markup:
    """Label coverage (labelled / predictions) per window, 0 to 100%."""
    height, top, bottom = 130, 8, 100

    def y(v: float) -> float:
        return bottom - (bottom - top) * v

    body = _time_ticks(axis, top, bottom)
    for v in (0.0, 0.5, 1.0):
        body.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_n(y(v))}" y2="{_n(y(v))}"/>')
        body.append(f'<text class="tick" x="{LEFT - 6}" y="{_n(y(v) + 4)}" text-anchor="end">{v:.0%}</text>')
    mid = [(axis.x((b.start_ms + b.end_ms) / 2), b) for b in buckets]
    body.append(
        f'<path class="coverage" d="{_path([(x, None if b.coverage is None else y(b.coverage)) for x, b in mid])}"/>'
    )
    return _svg("coverage", height, "label coverage per window", body, points=len(buckets))


def versions_strip(segments: Sequence[tuple[int, int, str, str]], axis: Axis) -> Markup:
    """Which version served when: one bar per deployment ``(from_ms, to_ms, version, reason)``."""
    height = 44
    colours: dict[str, str] = {}
    body = []
    for start, end, version, reason in segments:
        colour = colours.setdefault(version, PALETTE[len(colours) % len(PALETTE)])
        x0, x1 = axis.x(start), axis.x(end)
        body.append(
            f'<rect class="version" x="{_n(x0)}" y="6" width="{_n(max(x1 - x0, 1.0))}" height="22" fill="{colour}">'
            f"<title>{escape(version)} from {iso_ms(start)} ({escape(reason)})</title></rect>"
        )
        if x1 - x0 > 30:
            body.append(f'<text class="version-label" x="{_n(x0 + 4)}" y="22">{escape(version)}</text>')
    return _svg("versions", height, "deployed versions over time", body, segments=len(segments))


def _heat(value: float | None, limit: float) -> str:
    if value is None:
        return "#eeeeee"
    t = min(value / (2 * limit), 1.0) if limit > 0 else 1.0
    red, green = int(255 * min(1.0, 2 * t)), int(255 * min(1.0, 2 * (1 - t)))
    return f"rgb({red},{green},60)"


def drift_heatmap(grid: DriftGrid, axis: Axis, limit: float) -> Markup:
    """Worst PSI per feature and column; green below half the limit, red from twice it, grey without data."""
    row_h, top = 22, 4
    height = top + row_h * max(len(grid.features), 1) + 22
    body = []
    for i, (feature, kind) in enumerate(zip(grid.features, grid.kinds)):
        y = top + i * row_h
        label = feature if len(feature) <= FEATURE_LABEL else feature[: FEATURE_LABEL - 1] + "…"
        body.append(f'<text class="feature" x="{LEFT - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        for (start, end), value in zip(grid.columns, grid.cells[i]):
            x0, x1 = axis.x(start), axis.x(end)
            shown = "no data" if value is None else f"PSI {number(value, 3)}"
            body.append(
                f'<rect class="cell" x="{_n(x0)}" y="{y}" width="{_n(max(x1 - x0, 1.0))}" height="{row_h - 2}"'
                f' fill="{_heat(value, limit)}"><title>{escape(feature)} ({escape(kind)}) '
                f"{iso_ms(start)}: {shown}</title></rect>"
            )
    body += [t for t in _time_ticks(axis, top, top + row_h * len(grid.features)) if t.startswith("<text")]
    return _svg("drift", height, f"drift (PSI) per feature, limit {limit:g}", body, features=len(grid.features))
