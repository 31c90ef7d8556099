"""Self-contained HTML report of one model: accuracy, labels, versions, drift, latency and decisions."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from monitoring.app import plots
from monitoring.core.clock import SystemClock, iso_ms
from monitoring.core.config import AbsolutePolicy, DriftPolicy, PipelineConfig, WilsonPolicy
from monitoring.domain.decisions import Decision
from monitoring.domain.window_metrics import WindowMetrics
from monitoring.state.store import DeploymentRow, StateStore

__all__ = ["write_report", "REPORT_FILE", "CHART_FILES"]

REPORT_FILE = "report.html"
CHART_FILES = ("accuracy.png", "coverage.png", "versions.png", "drift.png", "latency.png")
DEFAULT_CONFIDENCE = 0.95
DECISION_LIMIT = 50
LATENCY_ATTRS = ("latency_p50_ms", "latency_p95_ms")
#: Deployment reasons shown as they are; any other reason is the id of the decision that redeployed.
PLAIN_REASONS = ("bootstrap", "discovered", "rollback")

_CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2430;
 background:#f4f6f9;margin:0}
main{max-width:1240px;margin:0 auto;padding:28px 32px 48px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:0 0 10px}
.sub{color:#5b6675;margin:0 0 18px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(220px,1fr));gap:14px;margin-bottom:22px}
.card,section{background:#fff;border:1px solid #dde2ea;border-radius:8px}
.card{padding:12px 16px}.card b{display:block;font-size:12px;text-transform:uppercase;letter-spacing:.05em;
 color:#5b6675;margin-bottom:4px}.card>span{font-size:17px;overflow-wrap:anywhere}
section{padding:18px 20px;margin-bottom:20px}
section img{width:100%;height:auto;display:block}
.note{color:#5b6675;font-size:13.5px;margin:8px 0 0}
.empty{font-size:17px;padding:24px 20px}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th,td{text-align:left;vertical-align:top;padding:7px 10px;border-bottom:1px solid #e6e9ef}
th{background:#f0f3f7;font-weight:600;white-space:nowrap}
td.t{white-space:nowrap;font-variant-numeric:tabular-nums}
td.r{min-width:300px}code{font-size:12px;overflow-wrap:anywhere}.scroll{overflow-x:auto}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;font-size:12.5px;font-weight:600;
 white-space:nowrap;background:#e3e7ee;color:#333}
.a-redeploy{background:#fbd5d5;color:#8a1111}.a-suppressed{background:#fde4c8;color:#8a4b00}
.a-warn{background:#fff1b8;color:#6b5400}.a-none{background:#d7f2dc;color:#17612a}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _version(dep: DeploymentRow) -> str:
    return dep.version or dep.build_id or dep.deployment_crn.rsplit("/", 1)[-1]


def _img(data: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" alt="{_e(alt)}">'


def _badge(action: str | None) -> str:
    return f'<span class="badge a-{_e(action)}">{_e(action or "-")}</span>'


def _section(title: str, body: str, note: str = "") -> str:
    return f"<section><h2>{_e(title)}</h2>{body}" + (f'<p class="note">{note}</p>' if note else "") + "</section>"


def _table(head: Sequence[str], rows: Sequence[str], empty: str) -> str:
    if not rows:
        return f'<p class="note">{_e(empty)}</p>'
    return (
        '<div class="scroll"><table><thead><tr>'
        + "".join(f"<th>{_e(h)}</th>" for h in head)
        + "</tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></div>"
    )


def _deployments_table(deps: Sequence[DeploymentRow]) -> str:
    rows = [
        f'<tr><td class="t">{_e(iso_ms(d.deployed_ms))}</td><td>{_e(_version(d))}</td><td>{_e(d.reason)}</td>'
        f"<td><code>{_e(d.build_id)}</code></td><td><code>{_e(d.deployment_crn)}</code></td></tr>"
        for d in deps
    ]
    return _table(("Deployed", "Version", "Reason", "Build", "Deployment CRN"), rows, "No deployments recorded.")


def _decisions_table(decisions: Sequence[Decision]) -> str:
    rows = []
    for d in decisions:
        span = (
            "-"
            if d.window_start_ms is None
            else f"{_e(iso_ms(d.window_start_ms))}<br>to {_e(iso_ms(d.window_end_ms or d.window_start_ms))}"
        )
        outcome = _e(d.outcome or "-") + (
            f"<br><span class=note>{_e(d.outcome_detail)}</span>" if d.outcome_detail else ""
        )
        rows.append(
            f'<tr><td class="t">{_e(iso_ms(d.created_ms))}<br><code>{_e(d.id)}</code></td>'
            f'<td class="t">{span}</td><td>{_badge(d.action)}</td><td class="r">{_e(d.reason)}</td>'
            f"<td>{_e(d.consumed_by or '-')}</td><td>{outcome}</td></tr>"
        )
    return _table(("Time", "Window", "Action", "Reason", "Consumed by", "Outcome"), rows, "No decisions recorded.")


def _thresholds(cfg: PipelineConfig) -> tuple[float, list[plots.Line], float | None]:
    policies = cfg.thresholds.policies
    wilson = [p for p in policies if isinstance(p, WilsonPolicy)]
    lines = [
        plots.Line(p.min, f"absolute min {p.min:g}", "--")
        for p in policies
        if isinstance(p, AbsolutePolicy) and p.metric == "accuracy"
    ]
    lines += [plots.Line(p.min, f"Wilson upper-bound min {p.min:g}", ":") for p in wilson]
    drift = [p.max_psi for p in policies if isinstance(p, DriftPolicy)]
    return (wilson[0].confidence if wilson else DEFAULT_CONFIDENCE), lines, (min(drift) if drift else None)


def _segments(deps: Sequence[DeploymentRow], end_ms: int) -> list[plots.Segment]:
    ends = [d.deployed_ms for d in deps[1:]] + [end_ms]
    return [
        plots.Segment(_version(d), d.deployed_ms, max(e, d.deployed_ms), d.reason or "-") for d, e in zip(deps, ends)
    ]


def _charts(cfg: PipelineConfig, deps: Sequence[DeploymentRow], windows: Sequence[WindowMetrics]) -> list[tuple]:
    """(file name, figure or None, title, note) for every chart section, in page order."""
    version = {d.deployment_crn: _version(d) for d in deps}
    by_version: dict[str, list[WindowMetrics]] = {}
    for w in windows:
        by_version.setdefault(version.get(w.deployment_crn, w.deployment_crn), []).append(w)
    order = list(dict.fromkeys([_version(d) for d in deps] + list(by_version)))
    colours = {v: plots.PALETTE[i % len(plots.PALETTE)] for i, v in enumerate(order)}
    times = [d.deployed_ms for d in deps] + [t for w in windows for t in (w.start_ms, w.end_ms)]
    if not times:
        return []
    span = (min(times), max(times))
    pad = max((span[1] - span[0]) // 50, 60_000)
    span = (span[0] - pad, span[1] + pad)
    markers = [
        plots.Marker(d.deployed_ms, f"{_version(d)} ({d.reason if d.reason in PLAIN_REASONS else 'redeploy'})")
        for d in deps[1:]
    ]
    confidence, lines, max_psi = _thresholds(cfg)
    out: list[tuple] = []
    if windows:
        out.append(
            (
                "accuracy.png",
                plots.accuracy_chart(by_version, colours, confidence, lines, markers, span),
                "Accuracy per window",
                f"Points are window accuracy at the window midpoint; the shaded band is "
                f"the {confidence:.0%} Wilson interval; black dashed/dotted lines are the configured thresholds "
                "(a Wilson policy fails when the band's upper edge is below its line).",
            )
        )
        out.append(
            (
                "coverage.png",
                plots.coverage_chart(by_version, colours, markers, span),
                "Label coverage",
                "Share of each window's predictions whose ground truth has arrived (windows are re-read "
                "until the label horizon passes, so recent bars may still grow).",
            )
        )
    if deps:
        out.append(
            (
                "versions.png",
                plots.timeline_chart(_segments(deps, span[1]), colours, span),
                "Version timeline",
                "Each bar is one deployment, labelled with why it was deployed "
                "(bootstrap, the decision id of a redeploy, or rollback).",
            )
        )
    present = {f for w in windows for f in w.drift}
    features = [f for f in cfg.model.feature_names if f in present] + sorted(present - set(cfg.model.feature_names))
    if features:
        columns = [(version.get(w.deployment_crn, w.deployment_crn), w) for w in windows]
        limit = (
            f"the black line on the colour bar is the drift policy limit {max_psi:g}"
            if max_psi is not None
            else "no drift policy is configured"
        )
        out.append(
            (
                "drift.png",
                plots.drift_chart(columns, features, max_psi),
                "Feature drift (PSI)",
                f"Population stability index of each feature per window against the training data; {limit}; "
                "grey cells have no statistic.",
            )
        )
    elif windows:
        out.append(("drift.png", None, "Feature drift (PSI)", "The windows carry no drift statistics."))
    if any(getattr(w, a, None) is not None for w in windows for a in LATENCY_ATTRS):
        points = {
            v: [((w.start_ms + w.end_ms) // 2, *(getattr(w, a, None) for a in LATENCY_ATTRS)) for w in rows]
            for v, rows in by_version.items()
        }
        out.append(
            (
                "latency.png",
                plots.latency_chart(points, colours, markers, span),
                "Prediction latency",
                "Median (solid) and 95th percentile (dashed) response time per window.",
            )
        )
    elif windows:
        out.append(
            (
                "latency.png",
                None,
                "Prediction latency",
                "No latency recorded: the windows carry no latency_p50_ms/latency_p95_ms.",
            )
        )
    return out


def write_report(cfg: PipelineConfig, store: StateStore, out_dir: Path, now_ms: int | None = None) -> Path:
    """Write ``out_dir/report.html`` (images embedded, inline CSS, no links or scripts) and the PNGs beside it.

    Args:
        cfg: the pipeline config (model name, threshold policies).
        store: the state store to read windows, deployments and decisions from.
        out_dir: directory to write into (created if missing); chart PNGs not drawn this time are removed.
        now_ms: the generation time shown in the header; the system clock when None.
    Returns:
        the path of the HTML file.
    """
    name = cfg.model.name
    now_ms = SystemClock().now_ms() if now_ms is None else int(now_ms)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    deps = store.deployments(name)
    windows = store.windows(model=name)
    decisions = store.list_decisions(model=name, limit=DECISION_LIMIT)
    current = store.current_deployment(name)
    latest = decisions[0] if decisions else None

    sections, written = [], set()
    for file_name, fig, title, note in _charts(cfg, deps, windows):
        if fig is None:
            sections.append(_section(title, "", _e(note)))
            continue
        data = plots.png_bytes(fig)
        (out_dir / file_name).write_bytes(data)
        written.add(file_name)
        sections.append(_section(title, _img(data, title), _e(note)))
    for stale in set(CHART_FILES) - written:
        (out_dir / stale).unlink(missing_ok=True)
    if not windows:
        sections.insert(
            0,
            f'<section class="empty"><b>No data yet.</b> No windows have been computed for model '
            f"<code>{_e(name)}</code>: run compute_accuracy after some traffic has been served "
            "and labelled.</section>",
        )
    sections.append(_section("Deployments", _deployments_table(deps)))
    sections.append(_section(f"Decisions (latest {DECISION_LIMIT})", _decisions_table(decisions)))

    span = f"{iso_ms(windows[0].start_ms)} .. {iso_ms(max(w.end_ms for w in windows))}" if windows else "-"
    verdict = (
        (f'{_badge(latest.action)} {_e(iso_ms(latest.created_ms))}<br><span class="note">{_e(latest.reason)}</span>')
        if latest
        else "no decision yet"
    )
    cards = [
        ("Current version", _e(_version(current)) if current else "none recorded"),
        ("Windows", f"{len(windows)}<br><span class=note>{_e(span)}</span>"),
        ("Generated", _e(iso_ms(now_ms))),
        ("Latest decision", verdict),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>cml-monitor report: {_e(name)}</title><style>{_CSS}</style></head><body><main>"
        f"<h1>cml-monitor report: {_e(name)}</h1>"
        f'<p class="sub">{_e(cfg.model.description)}</p><div class="cards">'
        + "".join(f'<div class="card"><b>{_e(k)}</b><span>{v}</span></div>' for k, v in cards)
        + "</div>"
        + "".join(sections)
        + "</main></body></html>\n"
    )
    path = out_dir / REPORT_FILE
    path.write_text(page, encoding="utf-8")
    return path
