"""Case (e): ``cml-monitor analyze`` end to end on a ``read_metrics`` dump, ours vs the seed's way.

Each side is a whole process timed from its start to its exit (imports, reading the file,
the windows, ``windows.csv`` and ``accuracy.png`` written), with its peak resident memory
from ``wait4``. The seed's way is ``python -m bench.analyze_case DUMP OUT``: ``json.load``,
``pd.json_normalize``, pandas per hourly window, ``to_csv`` and a matplotlib plot.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.runner import REPO, STEP_TIMEOUT_S, StepError, _env
from bench.table import Row

#: Ours must take at most this share of the seed's time (>= 5x faster).
E_MAX_TIME_RATIO = 0.20
#: Runs of each side, alternating; the fastest counts (other work on the machine only slows runs down).
E_RUNS = 3


def seed_analyze(dump: Path, out_dir: Path) -> None:
    """The seed's way (LAB 07): json.load, json_normalize, pandas, a CSV and a matplotlib plot."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.seed_way import seed

    with open(dump) as f:
        records = json.load(f)["metrics"]
    windows = seed(records)
    out_dir.mkdir(parents=True, exist_ok=True)
    windows.to_csv(out_dir / "windows.csv", index=False)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.plot(windows["start_ms"].astype("datetime64[ms]"), windows["accuracy"], marker="o")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"Accuracy per window: {dump.name}")
    fig.savefig(out_dir / "accuracy.png")


def _timed(argv: list[str], log: Path) -> dict:
    """Run ``argv`` to its end: wall seconds from spawn to exit, CPU seconds, peak RSS (MB).

    CPU seconds are the steadier figure on a busy machine: waiting for a core adds to the wall
    time only.
    """
    load = os.getloadavg()[0]
    with open(log, "w") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=err)
        deadline = started + STEP_TIMEOUT_S
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                raise StepError(f"{argv[2:4]} did not finish within {STEP_TIMEOUT_S} s")
            time.sleep(0.002)
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise StepError(f"{' '.join(argv[1:4])} failed (exit {proc.returncode}); stderr in {log}")
    cpu = usage.ru_utime + usage.ru_stime  # with its children (the plot helper) that it waited for
    return {"seconds": seconds, "cpu_s": cpu, "peak_mb": usage.ru_maxrss / 1024, "load_1m": load}


def _digest(path: Path) -> dict:
    """Windows, labelled rows and the sum of accuracies of a windows.csv (either side's columns)."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    accuracy = [float(r["accuracy"]) for r in rows if r["accuracy"] not in ("", "nan")]
    return {
        "windows": len(rows),
        "labelled": sum(int(float(r["labelled"])) for r in rows),
        "accuracy_sum": round(sum(accuracy), 6),
    }


def case_analyze(opt) -> list[Row]:
    """(e) both sides ``E_RUNS`` times each, alternating, on one dump of ``opt.analyze_size`` records."""
    from bench.cases import A_START_MS, _say
    from bench.windows_case import records_file

    n = opt.analyze_size
    _say(f"(e) writing/reusing {n:,} records")
    dump = records_file(opt.out_dir, n, A_START_MS)
    out = {side: opt.out_dir / f"analyze-{side}" for side in ("seed", "ours")}
    argv = {
        "seed": [sys.executable, "-m", "bench.analyze_case", str(dump), str(out["seed"])],
        "ours": [
            sys.executable,
            "-m",
            "monitoring.app.cli",
            "analyze",
            str(dump),
            "--window",
            "1h",
            "--out",
            str(out["ours"]),
        ],
    }
    opt.logs.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[dict]] = {"seed": [], "ours": []}
    for i in range(E_RUNS):
        for side in ("seed", "ours"):
            _say(f"(e) {side} run {i + 1} of {E_RUNS} at N={n:,}")
            runs[side].append(_timed(argv[side], opt.logs / f"analyze-{side}-{i}.log"))
    best = {side: min(r, key=lambda x: x["seconds"]) for side, r in runs.items()}
    digests = {side: _digest(out[side] / "windows.csv") for side in out}
    opt.raw["e"] = {"runs": runs, "digests": digests}
    base = best["seed"]
    ratio = best["ours"]["seconds"] / base["seconds"]
    same = digests["seed"] == digests["ours"]
    spread = {s: "/".join(f"{r['seconds']:.2f}" for r in runs[s]) for s in runs}
    cpu = {s: min(r["cpu_s"] for r in runs[s]) for s in runs}
    return [
        Row(
            "e",
            "seed: json.load + json_normalize + pandas + matplotlib",
            n,
            base["seconds"],
            base["peak_mb"],
            note=f"baseline; process start to files written; runs {spread['seed']} s; CPU {cpu['seed']:.2f} s",
        ),
        Row(
            "e",
            "ours: cml-monitor analyze",
            n,
            best["ours"]["seconds"],
            best["ours"]["peak_mb"],
            time_ratio=ratio,
            mem_ratio=best["ours"]["peak_mb"] / base["peak_mb"],
            target=f"time <= {E_MAX_TIME_RATIO:.2f} (>= 5x faster)",
            met=ratio <= E_MAX_TIME_RATIO,
            note=("same windows as seed" if same else f"DIFFERENT from seed: {digests}") + f"; runs {spread['ours']} s",
        ),
    ]


if __name__ == "__main__":
    seed_analyze(Path(sys.argv[1]), Path(sys.argv[2]))
