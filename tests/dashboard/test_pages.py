"""The dashboard's pages and JSON endpoints on a filled store: right numbers, documented shapes, nothing unsafe."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from monitoring.core.logs import REDACTOR
from monitoring.state.store import StateStore
from tests.dashboard.support import PLANTED, client, filled, schema_check, store_config
from tests.report.report_support import ACCURACY, HOSTILE, NOW, T0, tag_problems

HOUR = 3_600_000


@pytest.fixture
def dash(tmp_path):
    db = tmp_path / "state.db"
    filled(db)
    return client(store_config(db), tmp_path)


def test_the_json_endpoints_match_the_documented_schema_and_the_store(dash, tmp_path):
    status = dash.get("/api/v1/status").get_json()
    schema_check(status, "status")
    (model,) = status["models"]
    assert model["model"] == HOSTILE and model["deployment"]["version"] == "v1"
    assert model["deployment"]["reason"] == "rollback" and model["health"] == "failing"
    assert {j["job"]: j["exit_code"] for j in model["jobs"]} == {"compute_accuracy": 0, "redeploy": 5}
    assert model["what_to_do"][0] == "redeploy failed (exit 5): restore v1"
    assert model["latest_window"]["value"] == pytest.approx(ACCURACY[11])  # the last window has no labels yet
    assert model["metric"]["name"] == "accuracy" and model["metric"]["direction"] == "higher"
    assert model["metric"]["thresholds"] == [{"policy": "absolute", "value": 0.8}, {"policy": "wilson", "value": 0.75}]
    windows = dash.get("/api/v1/windows?range=all").get_json()
    schema_check(windows, "windows")
    assert windows["total"] == len(ACCURACY) and [w["value"] for w in windows["windows"]] == pytest.approx(
        list(ACCURACY), nan_ok=True
    )
    with StateStore(f"sqlite:///{tmp_path / 'state.db'}") as store:
        stored = store.windows(model=HOSTILE)
    for got, want in zip(windows["windows"], stored):
        assert (got["start_ms"], got["labelled"], got["predictions"]) == (
            want.start_ms,
            want.labelled,
            want.predictions,
        )
        if want.accuracy is not None:  # the band is the Wilson interval the wilson policy judges
            assert got["low"] < want.accuracy < got["high"]
    decisions = dash.get("/api/v1/decisions?range=all").get_json()
    schema_check(decisions, "decisions")
    assert decisions["total"] == 3 and decisions["decisions"][1]["consumed_by"] == "run-7"
    assert decisions["decisions"][1]["outcome"] == "deployed"
    schema_check(dash.get("/api/v1/windows?range=nonsense").get_json(), "error")


def test_the_range_narrows_windows_and_decisions_and_every_link_keeps_it(dash):
    since, until = T0 + 3 * HOUR, T0 + 8 * HOUR
    query = "from=2025-11-23T11:00Z&to=2025-11-23T16:00Z"
    windows = dash.get(f"/api/v1/windows?{query}").get_json()
    assert [w["start_ms"] for w in windows["windows"]] == list(range(since, until, HOUR))
    decisions = dash.get(f"/api/v1/decisions?{query}").get_json()
    assert [d["id"][:16] for d in decisions["decisions"]] == ["d-20251123130500", "d-20251123110500"]
    page = dash.get(f"/model?{query}").get_data(as_text=True)
    assert '<span data-field="windows">5</span> windows' in page
    links = [
        parse_qs(urlsplit(href.replace("&amp;", "&")).query)
        for href in re.findall(r'href="([^"]+)"', page)
        if href.startswith(("/model", "/api/v1/windows", "/api/v1/decisions", "/?"))
    ]
    assert links and all(q["from"] == ["2025-11-23T11:00:00Z"] and q["to"] == ["2025-11-23T16:00:00Z"] for q in links)
    preset = dash.get("/model?range=6h").get_data(as_text=True)
    assert "range=6h" in preset and 'value="6h" selected' in preset
    assert dash.get("/model?from=2025-11-23T16:00Z&to=2025-11-23T11:00Z").status_code == 400


def first_point_x(page: str) -> float:
    """Where the metric's line starts, in the chart's 1000-wide viewBox (the plot spans 110 to 984)."""
    return float(re.search(r'<path class="value" d="M([\d.]+),', page).group(1))


def test_without_a_range_the_charts_hold_the_data_when_it_spans_less_than_seven_days(dash):
    """13 hourly windows ending an hour before now: the page opens on them, not on the right edge of 7 days."""
    page = dash.get("/model").get_data(as_text=True)
    assert "2025-11-23T08:00:00Z to 2025-11-23T22:00:00Z" in page  # the first window's start to now
    assert f'<span data-field="windows">{len(ACCURACY)}</span> windows' in page
    assert 'value="all" selected' in page
    assert first_point_x(page) < 200  # the first window is at the left of the chart...
    week = dash.get("/model?range=7d").get_data(as_text=True)  # ...where 7 days put it at the right edge
    assert first_point_x(week) > 900 and 'value="7d" selected' in week
    links = [
        href.replace("&amp;", "&")
        for page_ in (page, dash.get("/").get_data(as_text=True))
        for href in re.findall(r'href="([^"]+)"', page_)
        if href.startswith(("/model", "/api/v1/windows", "/api/v1/decisions", "/?"))
    ]
    assert links and not any("range=" in h or "from=" in h for h in links)  # the default is not pinned in links
    windows = dash.get("/api/v1/windows").get_json()
    assert windows["range"] == {"from_ms": T0, "to_ms": NOW, "preset": "all"} and windows["total"] == len(ACCURACY)


def test_hostile_names_and_reasons_are_escaped_in_every_page(dash):
    for url in ("/", "/model?range=all", "/model?range=<script>"):
        page = dash.get(url).get_data(as_text=True)
        assert "<script" not in page.lower() and "<img" not in page, url
        assert "<b>now</b>" not in page and "<b>hard</b>" not in page, url
        assert tag_problems(page) == [], url
    page = dash.get("/model?range=all").get_data(as_text=True)
    assert "&lt;script&gt;alert(&#34;pwn&#34;)&lt;/script&gt;" in page
    assert "redeploying &lt;b&gt;now&lt;/b&gt;" in page and "build failed &lt;b&gt;hard&lt;/b&gt;" in page
    response = dash.get("/model?range=all")
    csp = response.headers["Content-Security-Policy"]
    assert (
        "default-src 'none'" in csp
        and "script-src" not in csp
        and response.headers["X-Content-Type-Options"] == "nosniff"
    )


def test_no_planted_secret_reaches_a_page_or_an_endpoint(tmp_path, monkeypatch):
    for var in ("CDSW_APIV2_KEY", "CML_MONITOR_MODEL_API_KEY", "CML_MONITOR_MODEL_ACCESS_KEY"):
        monkeypatch.setenv(var, PLANTED)
    monkeypatch.setattr(REDACTOR, "secrets", set(REDACTOR.secrets))
    db = tmp_path / "state.db"
    filled(db, "tower")

    def plant(data):
        data["jobs"]["graph"][1]["environment"] = {"API_KEY": PLANTED, "DB_URL": f"postgresql://u:{PLANTED}@h/db"}
        data["alerts"] = {"webhook": {"url_env": "HOOK_URL"}}

    monkeypatch.setenv("HOOK_URL", f"https://hooks.example/{PLANTED}")
    with StateStore(f"sqlite:///{db}") as store:  # a reason that let a key through, as a careless job might
        store.db.execute("UPDATE decisions SET outcome_detail = ? WHERE outcome = 'deployed'", (f"token={PLANTED}",))
    from monitoring.app.dashboard.server import create_app
    from tests.dashboard.support import FixedClock

    REDACTOR.add(PLANTED)  # what configure_logging does with the secret variables at start-up
    app = create_app(store_config(db, "tower", plant), tmp_path, clock=FixedClock(NOW)).test_client()
    for url in (
        "/",
        "/model?model=tower&range=all",
        "/api/v1/status",
        "/api/v1/windows?model=tower&range=all",
        "/api/v1/decisions?model=tower&range=all",
        "/api/v1/schema",
        "/model?model=nope",
    ):
        body = app.get(url).get_data(as_text=True)
        assert PLANTED not in body, url
    assert "token=***" in app.get("/api/v1/decisions?model=tower&range=all").get_data(as_text=True)


def test_before_the_pipeline_ran_the_dashboard_says_so_and_creates_nothing(tmp_path):
    dash = client(store_config(tmp_path / "var" / "state.db"), tmp_path)
    page = dash.get("/")
    assert page.status_code == 503 and "the pipeline has not run here yet" in page.get_data(as_text=True)
    assert dash.get("/api/v1/status").get_json()["error"].startswith("no state store at ")
    assert dash.get("/healthz").status_code == 200
    assert not (tmp_path / "var").exists()


def test_a_regressors_dashboard_is_about_its_error_its_stored_bounds_and_ceilings(tmp_path):
    from monitoring.config.pipeline import parse_config
    from monitoring.domain.windows.results import WindowMetrics, bound_key
    from tests.report.report_support import CRN_V1, CRN_V2, ROOT

    data = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text(encoding="utf-8"))
    data["model"].update(
        name="prices", task="regression", features=["sqft", {"name": "zipcode", "kind": "categorical"}], label="price"
    )
    data["thresholds"]["policies"] = [
        {"kind": "absolute", "metric": "mae", "max": 60_000},
        {"kind": "bound", "metric": "mae", "max": 55_000, "confidence": 0.9},
        {"kind": "drift", "max_psi": 0.2},
    ]
    data["state"] = {"url": "sqlite:///state.db"}
    cfg = parse_config(data, "regression config")
    mae = (40_000.0, 70_000.0, 38_000.0)
    with StateStore("sqlite:///state.db", base_dir=tmp_path) as store:
        store.record_deployment("prices", CRN_V1, None, None, "v1", T0, "bootstrap")
        store.record_deployment("prices", CRN_V2, None, None, "v2", T0 + 2 * HOUR, "d-1")
        store.upsert_windows(
            WindowMetrics(
                CRN_V1 if i < 2 else CRN_V2,
                T0 + i * HOUR,
                T0 + (i + 1) * HOUR,
                100,
                80,
                mae=m,
                drift={"sqft": {"psi": 0.1 * i}, "zipcode": {"psi": 0.3, "js": 0.1}},
                bounds={bound_key("mae", 0.9): {"low": 0.8 * m, "high": 1.2 * m, "method": "t"}},
            )
            for i, m in enumerate(mae)
        )
    dash = client(cfg, tmp_path)
    windows = dash.get("/api/v1/windows?range=all").get_json()
    schema_check(windows, "windows")
    assert windows["metric"]["name"] == "mae" and windows["metric"]["direction"] == "lower"
    assert windows["metric"]["confidence"] == 0.9
    assert windows["metric"]["thresholds"] == [
        {"policy": "absolute", "value": 60_000},
        {"policy": "bound", "value": 55_000},
    ]
    assert [(w["value"], w["low"], w["high"]) for w in windows["windows"]] == [(m, 0.8 * m, 1.2 * m) for m in mae]
    page = dash.get("/model?range=all").get_data(as_text=True)
    assert "mae per window <small>(lower is better; band: 90% bounds)" in page
    assert '<svg class="chart drift"' in page and "zipcode (categorical)" in page
    assert '<td data-field="value">38,000</td>' in page and "absolute 60,000</text>" in page


def test_a_mape_dashboard_shows_the_rows_mape_left_out_and_a_pending_breach(tmp_path):
    """Judged on MAPE, each window says how many labelled rows had target 0 (left out of MAPE); a
    decision waiting for a second breaching window reads ``pending``, ``breach 1 of 2``."""
    from monitoring.config.pipeline import parse_config
    from monitoring.domain.decisions.decision import decide
    from monitoring.domain.windows.results import WindowMetrics
    from tests.report.report_support import CRN_V1, ROOT

    data = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text(encoding="utf-8"))
    data["model"].update(name="demand", task="regression", features=["temp"], label="rides")
    data["thresholds"].update(
        policies=[{"kind": "min_labelled", "min": 100}, {"kind": "absolute", "metric": "mape", "max": 0.2}],
        consecutive=2,
    )
    data["state"] = {"url": "sqlite:///state.db"}
    cfg = parse_config(data, "mape config")
    windows = [
        WindowMetrics(CRN_V1, T0 + i * HOUR, T0 + (i + 1) * HOUR, 1014, 1014, mae=3.0, mape=m, zero_targets=z)
        for i, (m, z) in enumerate(((0.12, 109), (0.31, 0)))
    ]
    with StateStore("sqlite:///state.db", base_dir=tmp_path) as store:
        store.record_deployment("demand", CRN_V1, None, None, "v1", T0, "bootstrap")
        store.upsert_windows(windows)
        policies, th = cfg.thresholds.policies, cfg.thresholds
        store.add_decision(
            decide(windows, policies, th.consecutive, 0, 3, [], T0 + 2 * HOUR, "demand", CRN_V1, None, "mape")
        )
    dash = client(cfg, tmp_path, now_ms=T0 + 3 * HOUR)
    got = dash.get("/api/v1/windows?range=all").get_json()
    schema_check(got, "windows")
    assert [(w["value"], w["zero_targets"]) for w in got["windows"]] == [(0.12, 109), (0.31, 0)]
    status = dash.get("/api/v1/status").get_json()
    schema_check(status, "status")
    (model,) = status["models"]
    decision = model["latest_decision"]
    assert (decision["action"], decision["breaches"], decision["consecutive"]) == ("pending", 1, 2)
    assert model["health"] == "attention"
    page = dash.get("/model?range=all").get_data(as_text=True)
    assert "<th>target 0 (left out)</th>" in page
    assert re.findall(r'<td data-field="zero-targets">(\d+)</td>', page) == ["0", "109"]  # newest first
    assert '<tr class="action-pending"' in page and '<span data-field="breach">breach 1 of 2</span>' in page
    index = dash.get("/").get_data(as_text=True)
    assert "<b>pending</b>" in index and '<span data-field="breach">breach 1 of 2</span>' in index
