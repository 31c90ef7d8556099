"""Self-contained HTML report of one model: its task's metric, labels, versions, drift, latency and decisions."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from cmlbase.clock import SystemClock, iso_ms
from monitoring.app import plots
from monitoring.config.metric_registry import METRICS, headline_metric, metric_spec
from monitoring.config.pipeline import AbsolutePolicy, BoundPolicy, DriftPolicy, PipelineConfig, WilsonPolicy
from monitoring.domain.decisions.decision import Decision
from monitoring.domain.decisions.policy_results import fmt_value
from monitoring.domain.windows.bounds import wilson_interval
from monitoring.domain.windows.headline import headline_confidence, policy_metric
from monitoring.domain.windows.results import WindowMetrics, bound_key
from monitoring.state.store import DeploymentRow, StateStore

__all__ = ["write_report", "REPORT_FILE", "CHART_FILES"]

REPORT_FILE = "report.html"
#: Every chart file the report may write: the headline metric's (``<metric>.png``) and the others.
CHART_FILES = (*(f"{m}.png" for m in METRICS), "coverage.png", "versions.png", "drift.png", "latency.png")
#: What each bounding method is called in the page.
METHOD_NAMES = {"wilson": "Wilson", "t": "t", "bootstrap": "bootstrap"}
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
.a-pending{background:#fde9c8;color:#7a4d00}
"""


def _e(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _version(dep: DeploymentRow) -> str:
    return dep.version or dep.build_id or dep.deployment_crn.rsplit("/", 1)[-1]


def _img(data: bytes, alt: str) -> str:
    return f'<img src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}" alt="{_e(alt)}">'


def _badge(action: str | None) -> str:
    return f'<span class="badge a-{_e(action)}">{_e(action or "-")}</span>'


def _streak(decision: Decision) -> str:
    """``breach 1 of 2`` under a decision's badge when its window breached."""
    streak = decision.streak()
    return f' <span class="note">breach {_e(streak)}</span>' if streak else ""


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


def served(metric: str, windows: Sequence[WindowMetrics]) -> str:
    """How a deployment did on ``metric`` over its windows: the labelled-weighted mean, and its last
    window's value (``-`` when no window of it was scored)."""
    scored = [(w.value(metric), w.labelled) for w in windows if w.value(metric) is not None and w.labelled > 0]
    if not scored:
        return "-"
    mean = sum(v * n for v, n in scored) / sum(n for _, n in scored)
    last = scored[-1][0]
    return f"{fmt_value(mean)} over {len(scored)} window{'s' * (len(scored) != 1)} (last {fmt_value(last)})"


def _deployments_table(deps: Sequence[DeploymentRow], windows: Sequence[WindowMetrics], metric: str) -> str:
    rows = [
        f'<tr><td class="t">{_e(iso_ms(d.deployed_ms))}</td><td>{_e(_version(d))}</td><td>{_e(d.reason)}</td>'
        f'<td class="t">{_e(served(metric, [w for w in windows if w.deployment_crn == d.deployment_crn]))}</td>'
        f"<td><code>{_e(d.build_id)}</code></td><td><code>{_e(d.deployment_crn)}</code></td></tr>"
        for d in deps
    ]
    head = ("Deployed", "Version", "Reason", f"{plots.metric_title(metric)} while serving", "Build", "Deployment CRN")
    return _table(head, rows, "No deployments recorded.")


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
            f'<td class="t">{span}</td><td>{_badge(d.action)}{_streak(d)}</td><td class="r">{_e(d.reason)}</td>'
            f"<td>{_e(d.consumed_by or '-')}</td><td>{outcome}</td></tr>"
        )
    return _table(("Time", "Window", "Action", "Reason", "Consumed by", "Outcome"), rows, "No decisions recorded.")


def _thresholds(cfg: PipelineConfig, metric: str) -> tuple[list[plots.Line], float | None]:
    """The limits drawn on the headline metric's chart, and the drift policies' tightest PSI limit."""
    policies = cfg.thresholds.policies
    lines = []
    for p in policies:
        if isinstance(p, (AbsolutePolicy, BoundPolicy)) and p.metric == metric:
            side = "min" if p.min is not None else "max"
            what = "absolute" if isinstance(p, AbsolutePolicy) else f"bound ({p.confidence:.0%})"
            style = "--" if what == "absolute" else ":"
            lines.append(plots.Line(p.limit, f"{what} {side} {fmt_value(p.limit)}", style))
        elif isinstance(p, WilsonPolicy) and p.metric == metric:
            lines.append(plots.Line(p.min, f"Wilson upper-bound min {fmt_value(p.min)}", ":"))
    drift = [p.max_psi for p in policies if isinstance(p, DriftPolicy)]
    return lines, (min(drift) if drift else None)


def _band(metric: str, confidence: float):
    """A window's stored interval of ``metric`` at ``confidence``; accuracy's Wilson interval when none is stored."""

    def band(w: WindowMetrics) -> tuple[float, float] | None:
        stored = w.bound(metric, confidence)
        if stored is None and metric == "accuracy" and w.accuracy is not None and w.labelled > 0:
            return wilson_interval(min(w.labelled, round(w.accuracy * w.labelled)), w.labelled, confidence)
        return stored

    return band


def _method(metric: str, windows: Sequence[WindowMetrics], confidence: float, n_classes: int) -> str:
    key = bound_key(metric, confidence)
    stored = next((w.bounds[key]["method"] for w in windows if key in w.bounds), None)
    return METHOD_NAMES.get(stored or metric_spec(metric).bound_method(n_classes), "confidence")


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
    metric = headline_metric(cfg.model.task, policy_metric(cfg.thresholds.policies))
    confidence = headline_confidence(cfg.thresholds.policies, metric)
    lines, max_psi = _thresholds(cfg, metric)
    out: list[tuple] = []
    if windows:
        method = _method(metric, windows, confidence, len(cfg.model.classes))
        band_label = f"{confidence:.0%} {method} interval"
        out.append(
            (
                f"{metric}.png",
                plots.metric_chart(
                    by_version, colours, metric, _band(metric, confidence), band_label, lines, markers, span
                ),
                f"{plots.metric_title(metric)} per window",
                f"Points are each window's {metric} at the window midpoint; the shaded band is the {band_label}; "
                "black dashed/dotted lines are the configured thresholds (a bound policy fails only when the band "
                "is wholly past its line).",
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
                plots.drift_chart(columns, features, max_psi, set(cfg.model.categorical_features)),
                "Feature drift (PSI)",
                f"Population stability index of each feature per window against the training data (numeric "
                f"features over quantile bins, categorical ones over their categories with 'other' and "
                f"'unseen' buckets); {limit}; grey cells have no statistic.",
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
    metric = headline_metric(cfg.model.task, policy_metric(cfg.thresholds.policies))
    sections.append(
        _section(
            "Deployments",
            _deployments_table(deps, windows, metric),
            f"{_e(plots.metric_title(metric))} while serving: the mean over the deployment's scored windows, "
            "weighted by their labels, and its last window's value.",
        )
    )
    sections.append(_section(f"Decisions (latest {DECISION_LIMIT})", _decisions_table(decisions)))

    span = f"{iso_ms(windows[0].start_ms)} .. {iso_ms(max(w.end_ms for w in windows))}" if windows else "-"
    verdict = (
        (
            f'{_badge(latest.action)}{_streak(latest)} {_e(iso_ms(latest.created_ms))}<br><span class="note">{_e(latest.reason)}</span>'
        )
        if latest
        else "no decision yet"
    )
    last = next((w for w in reversed(windows) if w.value(metric) is not None), None)
    cards = [
        ("Current version", _e(_version(current)) if current else "none recorded"),
        (
            f"Latest {plots.metric_title(metric)}",
            f"{_e(fmt_value(last.value(metric)))}<br><span class=note>{_e(iso_ms(last.start_ms))}, "
            f"{last.labelled} labelled</span>"
            if last
            else "no labelled window",
        ),
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
