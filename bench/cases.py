"""The cases: each runs its steps in fresh processes and turns their results into table rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import accuracy_case, workspace
from bench.dataset import DAY_MS
from bench.runner import StepError, run_step
from bench.table import Row
from localcml.core.errors import WorkspaceError
from monitoring.core.errors import MonitoringError


@dataclass
class Options:
    """What to run and how big; ``raw`` collects every step's result for ``results.json``."""

    out_dir: Path
    window_sizes: tuple[int, ...] = (100_000, 1_000_000)
    job_size: int = 10_000_000
    traffic_rows: int = 1000
    ground_truth_rows: int = 5_000
    analyze_size: int = 500_000
    replicas: int = 2
    concurrency: tuple[int, ...] = (4, 16)
    latency_ms: int = 0
    """(c): a standing latency (ms) the workspace adds to every model and metrics call (0: none)."""
    postgres: bool = False
    keep: bool = False
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        return self.out_dir / "logs"


def _say(text: str) -> None:
    print(f"bench: {text}", flush=True)


# -- (a) window metrics ----------------------------------------------------------------------------
A_START_MS = workspace.T0 + workspace.HOUR_MS
A_TARGET_N = 1_000_000


def case_windows(opt: Options) -> list[Row]:
    """(a) ours vs the seed's way at each N, plus ours with drift (information)."""
    from bench.windows_case import records_file

    rows: list[Row] = []
    for n in opt.window_sizes:
        _say(f"(a) writing/reusing {n:,} records")
        records_file(opt.out_dir, n, A_START_MS)
        results = {}
        for side in ("seed", "ours", "ours_drift"):
            _say(f"(a) {side} at N={n:,}")
            results[side] = run_step(
                "windows", {"side": side, "n": n, "start_ms": A_START_MS, "out_dir": str(opt.out_dir)}, opt.logs
            )
        opt.raw[f"a_{n}"] = results
        base = results["seed"]
        same = results["ours"]["digest"] == base["digest"]
        rows.append(
            Row(
                "a",
                "seed: json_normalize + pandas groupby",
                n,
                base["seconds"],
                base["peak_mb"],
                extra_mb=base["peak_extra_mb"],
                note="baseline",
            )
        )
        for side, label in (
            ("ours", "ours: records_to_columns + compute_windows"),
            ("ours_drift", "ours + PSI/KS drift of 4 features"),
        ):
            r = results[side]
            time_ratio = r["seconds"] / base["seconds"]
            mem_ratio = r["peak_extra_mb"] / max(base["peak_extra_mb"], 1e-9)
            target, met = "", None
            if side == "ours" and n >= A_TARGET_N:
                target = "time <= 0.10, mem <= 0.25"
                met = time_ratio <= 0.10 and mem_ratio <= 0.25
            note = (
                ("same windows as seed" if same else f"DIFFERENT from seed: {r['digest']} vs {base['digest']}")
                if side == "ours"
                else "information (drift is extra work)"
            )
            rows.append(
                Row(
                    "a",
                    label,
                    n,
                    r["seconds"],
                    r["peak_mb"],
                    extra_mb=r["peak_extra_mb"],
                    time_ratio=time_ratio,
                    mem_ratio=mem_ratio,
                    target=target,
                    met=met,
                    note=note,
                )
            )
    return rows


# -- (b) the compute_accuracy job -------------------------------------------------------------------
B_MAX_PEAK_MB = 1024
B_MAX_INCREMENTAL = 0.05


def _job_rows(opt: Options, backend: str, metrics_url: str | None, state_url: str | None) -> list[Row]:
    n = opt.job_size
    n_new = max(1, int(n * accuracy_case.NEW_SHARE))
    overrides: dict[str, Any] = {}
    if metrics_url:
        overrides = {"platform": {"local": {"metrics_url": metrics_url}}, "state": {"url": state_url}}
    project = workspace.make(overrides)
    raw: dict[str, Any] = {}
    opt.raw[f"b_{backend}"] = raw
    try:
        workspace.start(project)
        _say(f"(b/{backend}) bootstrap v1 in {project.root}")
        crns = run_step("bootstrap", project.params(), opt.logs)
        raw["bootstrap"] = crns
        common = {
            **project.params(),
            "deployment_crn": crns["deployment_crn"],
            "build_crn": crns["build_crn"],
            "model_crn": crns["model_crn"],
        }
        _say(f"(b/{backend}) loading {n:,} records over {accuracy_case.DAYS:g} days")
        raw["fill"] = run_step(
            "accuracy_fill",
            {**common, "n": n, "start_ms": accuracy_case.DATA_START_MS, "days": accuracy_case.DAYS, "seed": 7},
            opt.logs,
        )
        clock = project.clock()
        clock.set_now(accuracy_case.DATA_END_MS + 60_000)
        _say(f"(b/{backend}) full compute_accuracy run")
        raw["full"] = full = run_step("accuracy_run", common, opt.logs)
        new_days = accuracy_case.DAYS * accuracy_case.NEW_SHARE
        raw["add"] = run_step(
            "accuracy_fill",
            {**common, "n": n_new, "start_ms": accuracy_case.DATA_END_MS, "days": new_days, "seed": 8},
            opt.logs,
        )
        clock.set_now(accuracy_case.DATA_END_MS + int(new_days * DAY_MS) + 60_000)
        _say(f"(b/{backend}) incremental run after {n_new:,} new records")
        raw["incremental"] = inc = run_step("accuracy_run", common, opt.logs)
    finally:
        workspace.stop(project, remove=not opt.keep)
    fill = raw["fill"]
    ratio = inc["seconds"] / full["seconds"]
    return [
        Row(
            "b",
            f"{backend}: bulk load of the history (setup)",
            n,
            fill["seconds"],
            fill["peak_mb"],
            rate=f"{n / fill['seconds']:,.0f} records/s",
            note="information",
        ),
        Row(
            "b",
            f"{backend}: compute_accuracy, full first run",
            n,
            full["seconds"],
            full["peak_mb"],
            rate=f"{n / full['seconds']:,.0f} records/s",
            target=f"peak <= {B_MAX_PEAK_MB} MB",
            met=full["peak_mb"] <= B_MAX_PEAK_MB,
            note=f"{full['windows_computed']} windows, {full['predictions_in_windows']:,} predictions",
        ),
        Row(
            "b",
            f"{backend}: compute_accuracy, incremental run (+1%)",
            n_new,
            inc["seconds"],
            inc["peak_mb"],
            time_ratio=ratio,
            mem_ratio=inc["peak_mb"] / full["peak_mb"],
            target=f"time <= {B_MAX_INCREMENTAL:.2f} of full",
            met=ratio <= B_MAX_INCREMENTAL,
            note=f"{inc['windows_computed']} windows recomputed (new + label horizon)",
        ),
    ]


def case_job(opt: Options) -> list[Row]:
    """(b) on SQLite, and on PostgreSQL with ``--pg`` (a throwaway server, tests/pg.py)."""
    rows = _job_rows(opt, "sqlite", None, None)
    if opt.postgres:
        from tests.pg import postgres_unavailable_reason, start_postgres

        reason = postgres_unavailable_reason()
        if reason:
            _say(f"(b/postgresql) skipped: {reason}")
            return rows
        with start_postgres() as url:
            rows += _job_rows(opt, "postgresql", url, url)
    return rows


# -- (c) traffic -----------------------------------------------------------------------------------
C_MIN_SPEEDUP = 20.0
#: With a rehearsed round trip on every call, the targets are on both rates (issue 12, item 10).
C_LATENCY_MIN_SPEEDUP = 10.0


def _add_latency(latency_ms: int, project: workspace.Project, case: str) -> None:
    """Every model and metrics call waits ``latency_ms`` in the workspace (a rehearsed round trip; 0: none)."""
    if latency_ms:
        from localcml.faults import FaultPlan

        FaultPlan(project.workspace).add(f"latency.*=delay:{latency_ms}ms always")
        _say(f"({case}) every model and metrics call now waits {latency_ms} ms in the workspace")


def case_traffic(opt: Options) -> list[Row]:
    """(c) the seed's sequential calls vs simulate_traffic at each concurrency, against one deployment."""
    n = opt.traffic_rows
    project = workspace.make({"deployment": {"replicas": opt.replicas}, "scenario": {"rows_per_cycle": n}})
    ours: dict[int, dict] = {}
    try:
        workspace.start(project)
        _say(f"(c) bootstrap v1 with {opt.replicas} replica(s)")
        opt.raw["c_bootstrap"] = run_step("bootstrap", project.params(), opt.logs)
        _add_latency(opt.latency_ms, project, "c")
        _say(f"(c) seed: {n} sequential call_model + track_delayed_metrics")
        seed = run_step("traffic_seed", {**project.params(), "n": n}, opt.logs)
        for concurrency in opt.concurrency:
            _say(f"(c) ours: simulate_traffic with concurrency {concurrency}")
            ours[concurrency] = run_step("traffic_ours", {**project.params(), "concurrency": concurrency}, opt.logs)
    finally:
        workspace.stop(project, remove=not opt.keep)
    opt.raw["c"] = {"seed": seed, "ours": ours}
    setup = f"{opt.replicas} replica(s)" + (f", {opt.latency_ms} ms per call" if opt.latency_ms else "")
    least = C_LATENCY_MIN_SPEEDUP if opt.latency_ms else C_MIN_SPEEDUP

    def rate(r: dict, what: str, count: str) -> float:
        return r[count] / r[what]["seconds"]

    rows = []
    for what, count, unit in (("predict", "predictions", "predictions/s"), ("label", "labels", "labels/s")):
        base = rate(seed, what, count)
        call = "call_model" if what == "predict" else "track_delayed_metrics"
        rows.append(
            Row(
                "c",
                f"seed: sequential {call}",
                seed[count],
                seed[what]["seconds"],
                seed[what]["peak_mb"],
                rate=f"{base:,.0f} {unit}",
                note=f"baseline, {setup}" + (f", {seed['failed']} failed" if what == "predict" else ""),
            )
        )
        for concurrency, r in ours.items():
            mine = rate(r, what, count)
            speedup = mine / base
            target = f">= {least:g}x seed" if what == "predict" or opt.latency_ms else ""
            variant = (
                f"ours: simulate_traffic, concurrency {concurrency}"
                if what == "predict"
                else f"ours: post_due_labels, {concurrency} threads"
            )
            rows.append(
                Row(
                    "c",
                    variant,
                    r[count],
                    r[what]["seconds"],
                    r[what]["peak_mb"],
                    rate=f"{mine:,.0f} {unit}",
                    speedup=speedup,
                    target=target,
                    met=(speedup >= least) if target else None,
                    note=setup + (f", {r['failed']} failed" if what == "predict" else ""),
                )
            )
    return rows


def case_analyze(opt: Options) -> list[Row]:
    """(e) ``cml-monitor analyze`` end to end vs the seed's way (bench/analyze_case.py)."""
    from bench.analyze_case import case_analyze as run

    return run(opt)


# -- (f) the dashboard ------------------------------------------------------------------------------
def case_dashboard(opt: Options) -> list[Row]:
    """(f) each dashboard page over HTTP, 10,000 windows and 1,000 decisions in the store."""
    import tempfile

    from bench.dashboard_case import DECISIONS, F_MAX_SECONDS, PAGES, WINDOWS

    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as root:
        _say(f"(f) filling a state store with {WINDOWS:,} windows and {DECISIONS:,} decisions")
        fill = run_step("dashboard_fill", {"root": root}, opt.logs)
        _say("(f) timing the dashboard's pages")
        pages = run_step("dashboard_serve", {"root": root, "now_ms": fill["now_ms"]}, opt.logs)
    opt.raw["f"] = {"fill": fill, "pages": pages}
    rows = []
    for name, _ in PAGES:
        r = pages[name]
        is_page = not name.startswith("JSON")
        rows.append(
            Row(
                "f",
                f"dashboard: {name}",
                WINDOWS,
                r["median_s"],
                0.0,
                rate=f"cpu {r['median_cpu_s']:.2f} s, first {r['first_s']:.2f} s, max {r['max_s']:.2f} s, "
                f"{r['bytes'] / 1024:,.0f} KiB, load {r['load_1m']:.1f}",
                target=f"median <= {F_MAX_SECONDS:g} s" if is_page else "",
                met=r["median_s"] <= F_MAX_SECONDS if is_page else None,
                note="information" if not is_page else "",
            )
        )
    return rows


# -- (g) the ground-truth job ----------------------------------------------------------------------
G_MIN_SPEEDUP = 5.0
#: CML's metrics service is remote: without ``--latency``, (g) rehearses this round trip on every call
#: (with none, the local store's own writes, one at a time, bound both sides alike).
G_ROUND_TRIP_MS = 20


def case_ground_truth(opt: Options) -> list[Row]:
    """(g) a hand-written join and sequential posts vs the ground_truth job, N labels each."""
    from bench import ground_truth_case as g

    n = opt.ground_truth_rows
    latency = opt.latency_ms or G_ROUND_TRIP_MS
    project = workspace.make({"ground_truth": g.GROUND_TRUTH})
    try:
        workspace.start(project)
        _say("(g) bootstrap v1")
        crns = run_step("bootstrap", project.params(), opt.logs)
        _say(f"(g) storing 2 x {n:,} unlabelled predictions that track {g.KEY}, and their CRM files")
        fill = run_step("ground_truth_fill", {**project.params(), **crns, "n": n}, opt.logs)
        project.clock().set_now(g.NOW_MS)
        _add_latency(latency, project, "g")
        _say(f"(g) seed: read_metrics + read_csv + {n:,} sequential track_delayed_metrics")
        seed = run_step("ground_truth_seed", project.params(), opt.logs)
        _say("(g) ours: the ground_truth job")
        ours = run_step("ground_truth_ours", project.params(), opt.logs)
    finally:
        workspace.stop(project, remove=not opt.keep)
    opt.raw["g"] = {"fill": fill, "seed": seed, "ours": ours}
    base, mine = n / seed["seconds"], n / ours["seconds"]
    rows = [
        Row(
            "g",
            "seed: read_metrics, a key dict, read_csv, sequential track_delayed_metrics",
            n,
            seed["seconds"],
            seed["peak_mb"],
            extra_mb=seed["peak_extra_mb"],
            rate=f"{base:,.0f} labels/s",
            note=f"baseline, {latency} ms per call; {seed['agree']:,} of {n:,} records carry their file's label",
        ),
        Row(
            "g",
            f"ours: the ground_truth job ({g.posts_in_parallel()} parallel posts)",
            n,
            ours["seconds"],
            ours["peak_mb"],
            extra_mb=ours["peak_extra_mb"],
            rate=f"{mine:,.0f} labels/s",
            time_ratio=ours["seconds"] / seed["seconds"],
            mem_ratio=ours["peak_extra_mb"] / max(seed["peak_extra_mb"], 1e-9),
            speedup=mine / base,
            target=f">= {G_MIN_SPEEDUP:g}x seed",
            met=mine / base >= G_MIN_SPEEDUP,
            note=f"{latency} ms per call; {ours['agree']:,} of {n:,} records carry their file's label",
        ),
    ]
    return rows


CASES = {
    "a": case_windows,
    "b": case_job,
    "c": case_traffic,
    "e": case_analyze,
    "f": case_dashboard,
    "g": case_ground_truth,
}


def run_cases(names: list[str], opt: Options) -> tuple[list[Row], list[str]]:
    """Run the named cases; a failing case is reported and the others still run."""
    rows: list[Row] = []
    failures: list[str] = []
    for name in names:
        if name == "d":
            from bench.thirdparty import case_thirdparty

            func = case_thirdparty
        else:
            func = CASES[name]
        try:
            rows += func(opt)
        except (StepError, MonitoringError, WorkspaceError) as exc:  # a workspace that would not start, a failed step
            failures.append(f"case {name}: {exc}")
            _say(f"case {name} FAILED: {exc}")
    return rows, failures
