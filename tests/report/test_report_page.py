"""The HTML report: self-contained, escaped, with the charts drawn from the state store's data."""

from __future__ import annotations

import html
import re
from dataclasses import replace
from datetime import datetime, timezone

import pytest
import yaml

from monitoring.app import plots
from monitoring.app.report import CHART_FILES, REPORT_FILE, write_report
from monitoring.config.pipeline import WilsonPolicy, parse_config
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.windows.bounds import wilson_interval
from monitoring.domain.windows.compute import compute_windows
from monitoring.domain.windows.results import WindowMetrics, bound_key
from monitoring.state.store import StateStore
from tests.domain.support import DEPLOYMENT, prediction
from tests.domain.support import T0 as DOMAIN_T0
from tests.report.report_support import (
    ACCURACY,
    CRN_V1,
    CRN_V2,
    DEPLOYMENTS,
    FEATURES,
    HOSTILE,
    HOUR,
    NOW,
    PNG_MAGIC,
    REDEPLOY_ID,
    ROOT,
    T0,
    config,
    crn_at,
    embedded_pngs,
    fill,
    tag_problems,
    window,
)

DRAWN = ("accuracy.png", "coverage.png", "versions.png", "drift.png")


@pytest.fixture
def report(store, tmp_path):
    fill(store, HOSTILE)
    path = write_report(config(), store, tmp_path / "out", now_ms=NOW)
    return path, path.read_text(encoding="utf-8")


def test_report_is_self_contained_with_the_pngs_beside_it(report, tmp_path):
    path, page = report
    assert path == tmp_path / "out" / REPORT_FILE
    assert not re.search(r"https?://", page, re.IGNORECASE)
    assert "<script" not in page.lower() and "<link" not in page.lower()
    assert all(src.startswith("data:image/png;base64,") for src in re.findall(r'src="([^"]*)"', page))
    images = embedded_pngs(page)
    assert len(images) == len(DRAWN)
    for name, data in zip(DRAWN, images):
        on_disk = (path.parent / name).read_bytes()
        assert on_disk.startswith(PNG_MAGIC) and len(on_disk) > 5_000, name
        assert data == on_disk, f"{name}: the embedded image differs from the file"
        assert b"http" not in data, f"{name}: the PNG metadata carries a URL"
    assert not (path.parent / "latency.png").exists()
    assert "No latency recorded" in page
    assert tag_problems(page) == []


def test_hostile_text_is_escaped_everywhere(report):
    _, page = report
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>now</b>" not in page
    escaped = html.escape(HOSTILE, quote=True)
    assert f"<title>cml-monitor report: {escaped}</title>" in page
    assert f"<h1>cml-monitor report: {escaped}</h1>" in page
    assert "redeploying &lt;b&gt;now&lt;/b&gt;" in page


def test_header_and_tables_show_versions_and_decisions(report):
    _, page = report
    cards = dict(re.findall(r'<div class="card"><b>([^<]+)</b><span>(.*?)</span></div>', page))
    assert cards["Current version"] == "v1"  # the rollback re-deployed v1 last
    assert cards["Generated"] == "2025-11-23T22:00:00Z"
    assert cards["Latest decision"].startswith('<span class="badge a-none">none</span> 2025-11-23T20:05:00Z')
    assert "window passes all policies" in cards["Latest decision"]
    deployments = page.split("<h2>Deployments</h2>")[1].split("</section>")[0]
    assert [r for r in re.findall(r"<td>(v\d|bootstrap|rollback|d-[\w-]+)</td>", deployments)] == [
        "v1",
        "bootstrap",
        "v2",
        REDEPLOY_ID,
        "v1",
        "rollback",
    ]
    decisions = page.split("<h2>Decisions (latest 50)</h2>")[1]
    assert re.findall(r'class="badge a-(\w+)"', decisions) == ["none", "redeploy", "none"]  # newest first
    row = decisions.split(REDEPLOY_ID)[1].split("</tr>")[0]
    assert "2025-11-23T13:00:00Z<br>to 2025-11-23T14:00:00Z" in row
    assert "<td>run-7</td>" in row and "deployed" in row and "v2 serves" in row


def _by_version() -> dict[str, list[WindowMetrics]]:
    version = {crn: v for crn, v, _, _ in DEPLOYMENTS}
    out: dict[str, list[WindowMetrics]] = {}
    for i in range(len(ACCURACY)):
        out.setdefault(version[crn_at(i)], []).append(window(i))
    return out


def test_accuracy_chart_draws_thresholds_wilson_bands_and_redeploy_markers():
    lines = [plots.Line(0.8, "absolute min 0.8", "--"), plots.Line(0.75, "Wilson min 0.75", ":")]
    markers = [plots.Marker(T0 + 6 * HOUR, "v2 (redeploy)"), plots.Marker(T0 + 10 * HOUR, "v1 (rollback)")]

    def wilson(w):
        return wilson_interval(round(w.accuracy * w.labelled), w.labelled, 0.9)

    fig = plots.metric_chart(
        _by_version(),
        {"v1": "#1f77b4", "v2": "#ff7f0e"},
        "accuracy",
        wilson,
        "90% Wilson interval",
        lines,
        markers,
        (T0, T0 + 13 * HOUR),
    )
    ax = fig.axes[0]
    horizontal = sorted(ln.get_ydata()[0] for ln in ax.lines if list(ln.get_xdata()) == [0, 1])
    vertical = sorted(ln.get_xdata()[0] for ln in ax.lines if list(ln.get_ydata()) == [0, 1])
    assert horizontal == [0.75, 0.8]
    assert vertical == [datetime.fromtimestamp(m.ms / 1000, tz=timezone.utc) for m in markers]
    # three contiguous runs (v1, v2, v1 after the rollback), each with its band
    assert len(ax.collections) == 3
    first = ax.collections[0].get_paths()[0].vertices[:, 1]
    bands = [wilson_interval(round(a * (150 + 10 * i)), 150 + 10 * i, 0.9) for i, a in enumerate(ACCURACY[:6])]
    assert first.max() == pytest.approx(max(hi for _, hi in bands))
    assert first.min() == pytest.approx(min(lo for lo, _ in bands))
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "version v1",
        "version v2",
        "90% Wilson interval",
        "absolute min 0.8",
        "Wilson min 0.75",
    ]


@pytest.mark.parametrize("wilson, expected", [(0.8, "80%"), (None, "95%")])
def test_wilson_band_uses_the_configured_confidence(store, tmp_path, wilson, expected):
    fill(store, "m")
    cfg = config("m")
    policies = [p for p in cfg.thresholds.policies if p.kind != "wilson"]
    if wilson is not None:
        policies.append(WilsonPolicy(kind="wilson", min=0.75, confidence=wilson))
    cfg = cfg.model_copy(update={"thresholds": cfg.thresholds.model_copy(update={"policies": policies})})
    page = write_report(cfg, store, tmp_path, now_ms=NOW).read_text(encoding="utf-8")
    assert f"the {expected} Wilson interval" in page


def test_empty_store_gives_a_valid_page_and_removes_old_charts(store, tmp_path):
    other = StateStore(f"sqlite:///{tmp_path / 'full.db'}")
    try:
        fill(other, "m")
        write_report(config("m"), other, tmp_path / "out", now_ms=NOW)
    finally:
        other.close()
    assert all((tmp_path / "out" / name).exists() for name in DRAWN)
    page = write_report(config("m"), store, tmp_path / "out", now_ms=NOW).read_text(encoding="utf-8")
    assert "No data yet." in page and "No deployments recorded." in page and "No decisions recorded." in page
    assert "<img" not in page and tag_problems(page) == []
    assert not any((tmp_path / "out" / name).exists() for name in CHART_FILES)


def test_a_pending_breach_has_its_own_badge_and_streak(store, tmp_path):
    from monitoring.domain.decisions.decision import decide

    cfg = config("m")
    fill(store, "m")
    w = window(9)  # accuracy 0.7: below 0.8, the first breaching window of two needed
    store.add_decision(decide([w], cfg.thresholds.policies, 2, 0, 3, [], w.end_ms, "m", w.deployment_crn))
    page = write_report(cfg, store, tmp_path, now_ms=NOW).read_text(encoding="utf-8")
    latest = '<span class="badge a-pending">pending</span> <span class="note">breach 1 of 2</span>'
    assert latest in page.split("Latest decision")[1].split("</div>")[0]
    decisions = page.split("<h2>Decisions (latest 50)</h2>")[1]
    assert re.findall(r'class="badge a-(\w+)"', decisions)[0] == "pending" and ".a-pending{" in page
    assert tag_problems(page) == []


def test_one_window_without_drift(store, tmp_path):
    store.record_deployment("m", CRN_V1, None, None, None, T0, "bootstrap")
    store.upsert_windows([WindowMetrics(CRN_V1, T0, T0 + HOUR, 0, 0)])  # no predictions, no labels, no drift
    path = write_report(config("m"), store, tmp_path, now_ms=NOW)
    page = path.read_text(encoding="utf-8")
    assert len(embedded_pngs(page)) == 3
    assert "The windows carry no drift statistics." in page
    assert "deployment-1" in page  # no version or build recorded: the CRN's last part names it
    assert not (tmp_path / "drift.png").exists()


def test_latency_chart_when_windows_carry_latency(store, tmp_path):
    fill(store, "m")
    store.upsert_windows(
        replace(window(i), latency_p50_ms=20.0 + i, latency_p95_ms=None if i == 3 else 60.0 + 2 * i)
        for i in range(len(ACCURACY))
    )
    assert store.windows()[2].latency_p95_ms == 64.0  # read back from the store, not injected
    page = write_report(config("m"), store, tmp_path / "out", now_ms=NOW).read_text(encoding="utf-8")
    assert len(embedded_pngs(page)) == len(DRAWN) + 1
    assert "<h2>Prediction latency</h2><img" in page and "No latency recorded" not in page
    latency_png = (tmp_path / "out" / "latency.png").read_bytes()
    assert latency_png.startswith(PNG_MAGIC) and embedded_pngs(page)[-1] == latency_png


def test_latency_from_records_reaches_the_report(store, tmp_path):
    """CML records -> columns -> windows -> store -> report: the latency chart is drawn."""
    records = [prediction(f"u{i}", DOMAIN_T0 + i * 60_000, i % 2, label=i % 2) for i in range(120)]
    for i, rec in enumerate(records):
        rec["endTimeStampMs"] = rec["startTimeStampMs"] + 50 + (i % 40)
    results = compute_windows(records_to_columns(records, FEATURES), HOUR)
    assert [(r.latency_p50_ms, r.latency_p95_ms) for r in results] == [(64.5, 86.05), (74.5, 88.0)]
    store.record_deployment("m", DEPLOYMENT, None, None, "v1", DOMAIN_T0, "bootstrap")
    store.upsert_windows(results)
    page = write_report(config("m"), store, tmp_path, now_ms=DOMAIN_T0 + 3 * HOUR).read_text(encoding="utf-8")
    assert "<h2>Prediction latency</h2><img" in page
    assert (tmp_path / "latency.png").read_bytes().startswith(PNG_MAGIC)


def test_names_with_mathtext_are_drawn_literally(store, tmp_path):
    store.record_deployment("m", CRN_V1, None, None, r"$\bogus$", T0, "bootstrap")
    store.upsert_windows(
        [
            WindowMetrics(
                CRN_V1, T0 + i * HOUR, T0 + (i + 1) * HOUR, 100, 90, 0.9, drift={r"$\nope{$": {"psi": 0.1, "ks": 0.2}}
            )
            for i in range(2)
        ]
    )
    page = write_report(config("m"), store, tmp_path, now_ms=NOW).read_text(encoding="utf-8")
    assert len(embedded_pngs(page)) == 4
    assert r"<td>$\bogus$</td>" in page


def _regression_config() -> object:
    """A price regressor with a categorical feature, judged on its MAE: a ceiling and a t bound."""
    data = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text(encoding="utf-8"))
    data["model"].update(
        name="prices", task="regression", features=["sqft", {"name": "zipcode", "kind": "categorical"}], label="price"
    )
    data["thresholds"]["policies"] = [
        {"kind": "min_labelled", "min": 20},
        {"kind": "absolute", "metric": "mae", "max": 60_000},
        {"kind": "bound", "metric": "mae", "max": 55_000, "confidence": 0.9},
        {"kind": "drift", "max_psi": 0.2},
    ]
    return parse_config(data, "regression config")


#: MAE per window: v1 degrades, the redeployed v2 recovers.
MAE = (40_000.0, 45_000.0, 70_000.0, 90_000.0, 38_000.0, 36_000.0)


def _regression_window(i: int) -> WindowMetrics:
    crn = CRN_V1 if i < 4 else CRN_V2
    mae = MAE[i]
    return WindowMetrics(
        crn,
        T0 + i * HOUR,
        T0 + (i + 1) * HOUR,
        100,
        50 + 10 * i,
        mae=mae,
        rmse=1.3 * mae,
        r2=0.8,
        drift={"sqft": {"psi": 0.05 * i, "ks": 0.1}, "zipcode": {"psi": 0.02 * i, "js": 0.05}},
        bounds={bound_key("mae", 0.9): {"low": 0.8 * mae, "high": 1.2 * mae, "method": "t"}},
    )


def test_a_regressors_report_is_about_its_error(store, tmp_path):
    store.record_deployment("prices", CRN_V1, None, None, "v1", T0, "bootstrap")
    store.record_deployment("prices", CRN_V2, None, None, "v2", T0 + 4 * HOUR, REDEPLOY_ID)
    store.upsert_windows(_regression_window(i) for i in range(len(MAE)))
    out = tmp_path / "out"
    (out).mkdir()
    (out / "accuracy.png").write_bytes(PNG_MAGIC)  # left by an earlier classifier's report
    page = write_report(_regression_config(), store, out, now_ms=T0 + 7 * HOUR).read_text(encoding="utf-8")
    assert (out / "mae.png").read_bytes().startswith(PNG_MAGIC) and not (out / "accuracy.png").exists()
    assert "<h2>MAE per window</h2><img" in page and "the 90% t interval" in page
    cards = dict(re.findall(r'<div class="card"><b>([^<]+)</b><span>(.*?)</span></div>', page))
    assert cards["Latest MAE"].startswith("36,000<br>")
    assert "100 labelled" in cards["Latest MAE"]
    deployments = page.split("<h2>Deployments</h2>")[1].split("</section>")[0]
    assert "<th>MAE while serving</th>" in deployments
    # v1: (40k*50 + 45k*60 + 70k*70 + 90k*80) / 260; v2: (38k*90 + 36k*100) / 190
    v1 = (40_000 * 50 + 45_000 * 60 + 70_000 * 70 + 90_000 * 80) / 260
    assert f"{v1:,.1f} over 4 windows (last 90,000)" in deployments
    assert "36,947.4 over 2 windows (last 36,000)" in deployments
    assert "<h2>Feature drift (PSI)</h2><img" in page and tag_problems(page) == []
    columns = [("v1", _regression_window(i)) for i in range(len(MAE))]
    ticks = plots.drift_chart(columns, ["sqft", "zipcode"], 0.2, {"zipcode"}).axes[0].get_yticklabels()
    assert [t.get_text() for t in ticks] == ["sqft", "zipcode (categorical)"]


def test_the_metric_chart_of_an_error_draws_its_ceilings_and_bands_on_its_own_scale():
    cfg = _regression_config()
    windows = {"v1": [_regression_window(i) for i in range(4)], "v2": [_regression_window(i) for i in (4, 5)]}
    lines = [plots.Line(60_000, "absolute max 60,000", "--"), plots.Line(55_000, "bound (90%) max 55,000", ":")]
    fig = plots.metric_chart(
        windows,
        {"v1": "#1f77b4", "v2": "#ff7f0e"},
        "mae",
        lambda w: w.bound("mae", 0.9),
        "90% t interval",
        lines,
        [],
        (T0, T0 + 6 * HOUR),
    )
    ax = fig.axes[0]
    assert ax.get_ylabel() == "MAE" and cfg.model.task == "regression"
    horizontal = sorted(ln.get_ydata()[0] for ln in ax.lines if list(ln.get_xdata()) == [0, 1])
    assert horizontal == [55_000, 60_000]
    low, high = ax.get_ylim()
    assert low < 0.8 * 36_000 and high > 1.2 * 90_000  # the bands fit, not a 0-1 scale
    plotted = sorted(y for ln in ax.lines if len(ln.get_xdata()) > 2 or ln.get_marker() == "o" for y in ln.get_ydata())
    assert plotted == sorted(MAE)
