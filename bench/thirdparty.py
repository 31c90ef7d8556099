"""Case (d), optional: Evidently and NannyML on the same records, in their own virtualenv.

The virtualenv (``OUT/thirdparty-venv``) is created on first use with ``pip install`` of the
pinned versions; without network or on a resolver error the case reports why and is skipped.
The libraries get ready-made columns (labelled predictions), so their time excludes turning
records into a table, which ours includes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.child import RESULT_PREFIX
from bench.runner import REPO, STEP_TIMEOUT_S, StepError, run_step
from bench.table import Row

#: pandas < 3: Evidently 0.7 imports a pandas internal that pandas 3 removed.
PACKAGES = ("evidently==0.7.23", "nannyml==0.13.1", "pandas<3")
LIBRARIES = {
    "evidently": "Evidently: Report(Accuracy, Precision, Recall, F1) per hourly window",
    "nannyml": "NannyML: PerformanceCalculator, hourly chunks (fit on day 1)",
}
INSTALL_TIMEOUT_S = 1800


def write_columns(params: dict) -> dict:
    """Child step: the labelled predictions of the cached records as CSV for the libraries."""
    from bench.dataset import FEATURES, load_json
    from bench.windows_case import records_file
    from monitoring.domain.records.decode import records_to_columns

    out = Path(params["csv"])
    if not out.is_file():
        columns = records_to_columns(
            load_json(records_file(Path(params["out_dir"]), params["n"], params["start_ms"])), FEATURES
        )
        labelled = np.isfinite(columns.label)
        frame = pd.DataFrame(
            {
                "start_ms": columns.start_ms[labelled],
                "prediction": columns.prediction[labelled].astype(np.int64),
                "label": columns.label[labelled].astype(np.int64),
            }
        )
        frame["probability"] = np.where(frame["prediction"] == 1, 0.75, 0.25)  # NannyML needs a score column
        frame.to_csv(out, index=False)
    return {"csv": str(out)}


def _venv(opt) -> Path:
    venv = opt.out_dir / "thirdparty-venv"
    python = venv / "bin" / "python"
    if not python.is_file():
        print(f"bench: (d) creating {venv} with {', '.join(PACKAGES)} (once)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
        done = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *PACKAGES],
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            raise StepError(f"pip install {' '.join(PACKAGES)} failed:\n{done.stderr[-2000:]}")
    return python


def _run(python: Path, library: str, csv: Path) -> dict:
    try:
        done = subprocess.run(
            [str(python), str(REPO / "bench" / "thirdparty_worker.py"), library, str(csv)],
            capture_output=True,
            text=True,
            timeout=STEP_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise StepError(f"(d) {library} did not finish within {STEP_TIMEOUT_S} s") from exc
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise StepError(f"(d) {library} failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


def case_thirdparty(opt) -> list[Row]:
    """(d) each library at each N of case (a); compared with the seed and ours of (a) when they ran."""
    from bench.cases import A_START_MS

    python = _venv(opt)
    rows = []
    for n in opt.window_sizes:
        csv = opt.out_dir / f"columns-{n}.csv"
        run_step(
            "thirdparty_columns",
            {"n": n, "start_ms": A_START_MS, "out_dir": str(opt.out_dir), "csv": str(csv)},
            opt.logs,
        )
        earlier = opt.raw.get(f"a_{n}", {})
        for library, label in LIBRARIES.items():
            print(f"bench: (d) {library} at N={n:,}", flush=True)
            r = _run(python, library, csv)
            opt.raw[f"d_{library}_{n}"] = r
            note = f"{r['version']}, ready-made columns; {r['windows']} windows"
            if "ours" in earlier:
                digest = earlier["ours"]["digest"]
                same = (r["labelled"], round(r["accuracy_sum"], 6)) == (
                    digest["labelled"],
                    round(digest["accuracy_sum"], 6),
                )
                note += (
                    f"; {'same' if same else 'DIFFERENT'} accuracy as ours; "
                    f"ours is {r['seconds'] / earlier['ours']['seconds']:.0f}x faster"
                )
            base = earlier.get("seed")
            rows.append(
                Row(
                    "d",
                    label,
                    n,
                    r["seconds"],
                    r["peak_mb"],
                    extra_mb=r["peak_extra_mb"],
                    time_ratio=r["seconds"] / base["seconds"] if base else None,
                    mem_ratio=r["peak_extra_mb"] / base["peak_extra_mb"] if base else None,
                    note=note,
                )
            )
    return rows
