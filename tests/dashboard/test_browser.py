"""The dashboard after a real closed-loop run: the application ``graph apply`` created, and Chromium on it.

One demo per module (``graph apply`` inside it creates the application); the workspace is then
brought up again, which starts the application again, as CML keeps an application running, and
it answers through the workspace's application URL. Chromium cannot open that URL itself
(``<name>.127.0.0.1`` is not a valid host for a browser: a host ending in a number is read as an
IPv4 address), so it opens the same code as ``cml-monitor dashboard`` serves it in a session, on
``$CDSW_APP_PORT``. Every number checked on the page is read from the state store. Chromium can
resolve no host name but loopback, and its network log shows every request of the page went to
loopback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import requests
from markupsafe import escape
from matplotlib.image import imread

from cmlbase.clock import iso_ms
from localcml.client.api import default_client
from monitoring.app.dashboard.charts import LEFT, RIGHT, WIDTH, Axis
from monitoring.cmlclient.refs import RUN_ACTIVE
from monitoring.state.job_runs import latest_job_runs
from monitoring.state.store import StateStore
from tests.chromium import command, find_chromium
from tests.dashboard.support import schema_check
from tests.project import make_project
from tests.waiting import wait_for

pytestmark = pytest.mark.heavy  # a closed-loop demo, then Chromium

DRIFT_AFTER = {"scenario": {"drift": {"start_after": "2h"}}}
CYCLES = 6
MODEL = "telco-cell-tower-failure"
SUBDOMAIN = "telco-cell-tower-failure"
JOBS = ("simulate_traffic", "compute_accuracy", "evaluate_thresholds", "redeploy")
DEMO_TIMEOUT_S = 600
CHROMIUM_TIMEOUT_S = 120
HEADER_NAVY = np.array([0x1D, 0x2B, 0x3A]) / 255  # dashboard.css header: the style sheet was served
V1_BLUE, V2_ORANGE = np.array([0x1F, 0x77, 0xB4]) / 255, np.array([0xFF, 0x7F, 0x0E]) / 255


@dataclass
class Demo:
    root: Path
    env: dict[str, str]

    @property
    def port(self) -> int:
        return int(urlsplit(self.env["CDSW_API_URL"]).port)

    @property
    def app_url(self) -> str:
        return f"http://{SUBDOMAIN}.127.0.0.1:{self.port}"

    def get(self, path: str) -> requests.Response:
        """Through the workspace, addressed by the application's host name, as CML forwards it."""
        host = f"{SUBDOMAIN}.127.0.0.1:{self.port}"
        return requests.get(f"http://127.0.0.1:{self.port}{path}", headers={"Host": host}, timeout=30)

    def store(self) -> StateStore:
        return StateStore("sqlite:///var/state.db", base_dir=self.root, read_only=True)


def _cli(root: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "monitoring.app.cli", *args, "--config", str(root / "config/pipeline.yaml")]
    return subprocess.run(
        [*cmd, "--project-root", str(root)], cwd=root, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash-demo")
    make_project(root, DRIFT_AFTER)
    try:
        proc = _cli(root, "demo", "--out", str(root / "demo-output"), "--cycles", str(CYCLES), timeout=DEMO_TIMEOUT_S)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "graph: create    application telco-cell-tower-failure dashboard" in proc.stdout
        up = _cli(root, "local", "env")
        assert up.returncode == 0, up.stderr
        env = dict(re.findall(r"^export (\w+)='?([^'\n]*)'?$", up.stdout, flags=re.M))
        run = Demo(root, env)
        _hold_the_schedule(run)
        wait_for(lambda: _answers(run), "the dashboard application to answer through the workspace", timeout=90)
        yield run
    finally:
        _cli(root, "local", "down")


def _hold_the_schedule(run: Demo) -> None:
    """Pause the head job (back on real time, its schedule would fire on the hour) and wait for any
    run it started: the store must not change while the pages are compared with it."""
    api = default_client(run.env["CDSW_API_URL"].removesuffix("/api/v1"), run.env["CDSW_APIV2_KEY"])
    project = run.env["CDSW_PROJECT_ID"]
    jobs = api.list_jobs(project, page_size=100).jobs
    for job in jobs:
        if job.schedule:
            api.update_job({"paused": True}, project, job.id)

    def idle() -> bool:
        runs = [r for j in jobs for r in api.list_job_runs(project, j.id, page_size=10).job_runs]
        return all(r.status not in RUN_ACTIVE for r in runs)

    wait_for(idle, "job runs started by the schedule to finish", timeout=300)


def _answers(run: Demo) -> bool:
    try:
        return run.get("/healthz").status_code == 200
    except requests.ConnectionError:
        return False


@pytest.fixture(scope="module")
def chromium() -> str:
    return find_chromium()


def _browse(chromium: str, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Chromium with no name resolvable but loopback; returns the URLs of the requests the page made.

    A page's requests are those whose network isolation key names the page's site (Chromium's own
    background requests carry another key or none).
    """
    netlog = tmp_path / f"netlog-{len(list(tmp_path.glob('netlog-*')))}.json"
    cmd = command(
        chromium,
        tmp_path / "chromium-profile",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--log-net-log={netlog}",
        *args,
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=False)
    assert proc.returncode == 0, f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr[-2000:]}"
    text = netlog.read_text().rstrip()
    if not text.endswith("}"):  # a log cut at exit lacks its closing brackets
        text = text.rstrip(",") + "]}"
    log = json.loads(text)
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    page_site = "http://127.0.0.1"
    urls = [
        e["params"]["url"]
        for e in log.get("events", [])
        if e["type"] == start_job
        and str(e.get("params", {}).get("network_isolation_key", "")).split(" ")[0] == page_site
    ]
    return proc, urls


@pytest.fixture(scope="module")
def session(demo):
    """``cml-monitor dashboard`` on ``$CDSW_APP_PORT``, as in a CML session; yields its URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CDSW_APP_PORT": str(port)}
    cmd = [sys.executable, "-m", "monitoring.app.cli", "dashboard", "--project-root", str(demo.root)]
    log = open(demo.root / "dashboard-session.log", "w")  # noqa: SIM115 - closed after the process ends
    proc = subprocess.Popen(cmd, cwd=demo.root, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:

        def listening():
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).status_code == 200
            except requests.ConnectionError:
                return False

        wait_for(listening, "cml-monitor dashboard to listen on $CDSW_APP_PORT", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_the_application_graph_apply_created_answers_on_its_port_with_the_documented_json(demo):
    status = demo.get("/api/v1/status")
    assert status.status_code == 200
    schema_check(status.json(), "status")
    (model,) = status.json()["models"]
    with demo.store() as store:
        current = store.current_deployment(MODEL)
        assert model["deployment"]["version"] == current.version == "v2"
        assert model["latest_decision"]["id"] == store.latest_decision(MODEL).id
        runs = {r.job: r for r in latest_job_runs(store, MODEL)}
    assert set(runs) == set(JOBS)  # the demo's last cycle, or a fire on the hour before the schedule was held
    assert {j["job"]: (j["run_id"], j["exit_code"]) for j in model["jobs"]} == {
        j: (r.run_id, r.exit_code) for j, r in runs.items()
    }
    for shape, path in (("windows", "/api/v1/windows?range=all"), ("decisions", "/api/v1/decisions?range=all")):
        schema_check(demo.get(path).json(), shape)
    assert "<h1>telco-cell-tower-failure</h1>" in demo.get("/model").text


def test_the_dashboard_renders_in_chromium_with_the_stores_numbers_and_nothing_from_outside(
    chromium, demo, session, tmp_path
):
    url = f"{session}/model?range=all"
    shot = tmp_path / "dashboard.png"
    _, shot_urls = _browse(chromium, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400", url)
    if os.environ.get("CML_MONITOR_KEEP_SCREENSHOT"):  # how docs/dashboard.png is made
        shutil.copy(shot, os.environ["CML_MONITOR_KEEP_SCREENSHOT"])
    proc, dom_urls = _browse(chromium, tmp_path, "--dump-dom", url)
    dom = proc.stdout
    assert url in shot_urls and f"{session}/static/dashboard.css" in shot_urls
    asked = {urlsplit(u).hostname for u in shot_urls + dom_urls}
    assert asked == {"127.0.0.1"}, asked  # the page and its style sheet: nothing from anywhere else

    with demo.store() as store:
        windows = store.windows(model=MODEL)
        decisions = store.list_decisions(MODEL, limit=1000)
        current = store.current_deployment(MODEL)
        runs = {r.job: r for r in latest_job_runs(store, MODEL)}
    assert f'<span data-field="windows">{len(windows)}</span> windows' in dom
    assert f'<dd data-field="version">{current.version}</dd>' in dom
    assert f'<span data-field="decision-total">{len(decisions)}</span>' in dom
    for job, run in runs.items():
        kind = "failed" if run.exit_code else "ok"
        row = re.search(rf'<tr class="{kind}" data-job="{job}">(.*?)</tr>', dom, flags=re.S)
        assert row and run.run_id in row.group(1) and iso_ms(run.finished_ms) in row.group(1), job
    shown = re.findall(
        r'<tr data-start="(\d+)" data-deployment="([^"]+)">.*?<td data-field="value">([^<]+)</td>', dom, flags=re.S
    )
    by_start = {(w.start_ms, w.deployment_crn): w for w in windows}  # a redeploy splits a window in two
    assert len(shown) == min(10, len(windows))
    for start, crn, value in shown:
        acc = by_start[(int(start), crn)].accuracy
        assert value == ("-" if acc is None else f"{acc:.4g}")
    redeploy = next(d for d in decisions if d.action.value == "redeploy")
    row = re.search(rf'<tr class="action-redeploy" data-decision="{redeploy.id}">(.*?)</tr>', dom, flags=re.S).group(1)
    assert redeploy.consumed_by in row and "<b>deployed</b>" in row
    for result in redeploy.results:  # each policy's value, bound, threshold and result as stored
        if result.value is not None:
            assert f'{escape(result.policy)}: <span data-field="result-value">{result.value:.4g}</span>' in row
    assert re.search(r'<svg class="chart drift"[^>]*data-features="4"', dom)
    assert re.search(r'<svg class="chart versions"[^>]*data-segments="2"', dom)  # v1, then v2 after the redeploy
    assert dom.count('class="redeploy"') == 1

    pixels = imread(shot)[..., :3]
    assert pixels.shape[:2] == (2400, 1280)
    for colour, least, what in (
        (HEADER_NAVY, 20_000, "the served style sheet"),
        (V1_BLUE, 2_000, "v1"),
        (V2_ORANGE, 2_000, "v2"),
    ):
        found = (np.abs(pixels - colour).max(axis=-1) < 0.03).sum()
        assert found > least, f"only {found} pixels of {what}'s colour: the page did not render"


def test_without_a_range_chromium_opens_on_the_hours_the_demo_ran_not_seven_days(chromium, demo, session, tmp_path):
    """After a demo of a few hours the page opens on those hours: the range runs from the first
    window to now, and the metric's line starts where its first window is on that axis, in the
    left half of the plot (on a 7-day range it would start at its right edge)."""
    proc, _ = _browse(chromium, tmp_path, "--dump-dom", f"{session}/model")
    dom = proc.stdout
    with demo.store() as store:
        windows = store.windows(model=MODEL)
    first = min(w.start_ms for w in windows)
    shown = re.search(r'<p class="range-note">(\S+) to (\S+):', dom)
    since, until = (int(datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000) for t in shown.groups())
    assert since == first and until - since < 24 * 3_600_000  # the demo's hours, not 7 days
    assert f'<span data-field="windows">{len(windows)}</span> windows' in dom
    assert re.search(r'<option value="all" selected', dom)
    valued = min((w for w in windows if w.accuracy is not None), key=lambda w: w.start_ms)
    x = float(re.search(r'<path class="value" d="M([\d.]+),', dom).group(1))
    assert x == pytest.approx(Axis(since, until).x((valued.start_ms + valued.end_ms) / 2), abs=0.1)
    assert x < LEFT + (WIDTH - LEFT - RIGHT) / 2


def _outbound_address() -> str | None:
    """This machine's address on its default route (a UDP "connect" sends nothing), None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        try:
            udp.connect(("192.0.2.1", 9))  # TEST-NET-1: routed like any outside address, never reached
        except OSError:
            return None
        address = udp.getsockname()[0]
    return None if address.startswith("127.") else address


def test_the_session_dashboard_binds_loopback_only(session):
    port = urlsplit(session).port
    address = _outbound_address()
    if address is not None:  # a machine with only loopback has nothing else to try
        with socket.socket() as probe:
            probe.settimeout(2)
            assert probe.connect_ex((address, port)) != 0, f"the dashboard answers on {address}:{port}"
    assert requests.get(f"{session}/api/v1/status", timeout=30).status_code == 200
