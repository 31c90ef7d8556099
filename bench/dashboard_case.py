"""Case (f): the dashboard's pages over HTTP with 10,000 windows and 1,000 decisions in the state store.

``fill`` writes the store through its own API (hourly windows over 10 deployments, six features'
drift, three policy results per decision, the last run of each job). ``serve`` starts the real
threaded server on loopback in its own process and times each page from request to last byte,
``RUNS`` times; the median counts (the first request also opens the store and is reported too),
with the process's CPU seconds (server and client: the steadier figure on a busy machine).
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import requests
import yaml

from monitoring.config.pipeline import parse_config
from monitoring.domain.decisions.decision import Action, Decision
from monitoring.domain.decisions.policy_results import PolicyResult
from monitoring.domain.windows.results import WindowMetrics
from monitoring.state.job_runs import JobRunRow, record_job_run
from monitoring.state.store import StateStore

REPO = Path(__file__).resolve().parents[1]
HOUR_MS = 3_600_000
T0 = 1_760_000_400_000 - 1_760_000_400_000 % HOUR_MS
WINDOWS, DECISIONS, VERSIONS = 10_000, 1_000, 10
FEATURES = ("signal_1", "signal_2", "signal_3", "signal_4", "region", "plan")
MODEL = "bench-model"
RUNS = 5
#: Each page must render within this (issue 13).
F_MAX_SECONDS = 1.0
PAGES = (
    ("overview", "/"),
    ("model page, all 10,000 windows", "/model?range=all"),
    ("model page, last 7 days", "/model"),
    ("JSON status", "/api/v1/status"),
    ("JSON windows, all", "/api/v1/windows?range=all"),
    ("JSON decisions, 1,000", "/api/v1/decisions?range=all&limit=1000"),
)


def _config(root: Path):
    data = yaml.safe_load((REPO / "config/pipeline.yaml").read_text())
    data["model"].update(name=MODEL, features=list(FEATURES))
    data["thresholds"]["policies"].append({"kind": "drift", "max_psi": 0.25, "action": "warn"})
    data["state"]["url"] = "sqlite:///var/state.db"
    return parse_config(data, "bench")


def fill(params: dict) -> dict:
    """Write the store under ``params["root"]``; returns the seconds it took."""
    root = Path(params["root"])
    started = time.perf_counter()
    rng = np.random.default_rng(13)
    crns = [f"crn:bench/deployment-{v}" for v in range(VERSIONS)]
    per = WINDOWS // VERSIONS
    with StateStore("sqlite:///var/state.db", base_dir=root) as store:
        for v, crn in enumerate(crns):
            store.record_deployment(
                MODEL, crn, "crn:bench/model", f"b{v}", f"v{v + 1}", T0 + v * per * HOUR_MS, "bench"
            )
        windows = []
        for i in range(WINDOWS):
            labelled = int(rng.integers(80, 400))
            acc = float(rng.uniform(0.7, 0.95))
            drift = {f: {"psi": float(rng.gamma(1.5, 0.06)), "ks": float(rng.uniform(0, 0.3))} for f in FEATURES}
            windows.append(
                WindowMetrics(
                    crns[i // per],
                    T0 + i * HOUR_MS,
                    T0 + (i + 1) * HOUR_MS,
                    500,
                    labelled,
                    acc,
                    acc,
                    acc,
                    acc,
                    {"tp": 1, "fp": 1, "tn": 1, "fn": 1},
                    drift,
                )
            )
        store.upsert_windows(windows)
        step = WINDOWS // DECISIONS
        for d in range(DECISIONS):
            w = windows[d * step + step - 1]
            results = [
                PolicyResult("min_labelled labelled >= 100", "pass", w.labelled, None, 100, "enough", "min_labelled"),
                PolicyResult(
                    "absolute accuracy >= 0.8",
                    "pass" if w.accuracy >= 0.8 else "fail",
                    w.accuracy,
                    None,
                    0.8,
                    "accuracy vs 0.8",
                    "absolute",
                ),
                PolicyResult(
                    "wilson accuracy upper bound (95%) >= 0.75",
                    "pass",
                    w.accuracy,
                    0.9,
                    0.75,
                    "wilson",
                    "wilson",
                    "act",
                    [0.7, 0.9],
                ),
            ]
            action = Action.NONE if w.accuracy >= 0.8 else Action.REDEPLOY
            store.add_decision(
                Decision(
                    None,
                    w.end_ms + 60_000,
                    MODEL,
                    w.deployment_crn,
                    w.start_ms,
                    w.end_ms,
                    {"accuracy": w.accuracy, "labelled": w.labelled},
                    results,
                    action,
                    "bench decision",
                )
            )
        end = T0 + WINDOWS * HOUR_MS
        for job in ("simulate_traffic", "compute_accuracy", "evaluate_thresholds", "redeploy"):
            record_job_run(store, JobRunRow(job, f"run-{job}", MODEL, "ok", 0, "bench run", "none", {"n": 1}, end))
    return {"seconds": time.perf_counter() - started, "now_ms": T0 + WINDOWS * HOUR_MS + HOUR_MS}


class _Clock:
    def __init__(self, now_ms: int):
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


def serve(params: dict) -> dict:
    """Serve the store's dashboard on loopback and time every page; returns seconds per page."""
    from monitoring.app.dashboard.server import create_app
    from monitoring.app.dashboard.server import serve as run_server

    root = Path(params["root"])
    app = create_app(_config(root), root, clock=_Clock(int(params["now_ms"])))
    bound: list[int] = []
    threading.Thread(target=run_server, args=(app, 0), kwargs={"ready": bound.append}, daemon=True).start()
    deadline = time.monotonic() + 30
    while not bound and time.monotonic() < deadline:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{bound[0]}"
    out = {}
    with requests.Session() as http:
        for name, path in PAGES:
            times, cpu, size = [], [], 0
            for _ in range(RUNS + 1):
                started, cpu_started = time.perf_counter(), time.process_time()
                answer = http.get(base + path, timeout=60)
                times.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
                answer.raise_for_status()
                size = len(answer.content)
            out[name] = {
                "first_s": times[0],
                "median_s": statistics.median(times[1:]),
                "max_s": max(times[1:]),
                "median_cpu_s": statistics.median(cpu[1:]),
                "bytes": size,
                "load_1m": os.getloadavg()[0],
            }
    return out
