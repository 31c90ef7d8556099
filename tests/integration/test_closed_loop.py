"""The closed loop end to end on the local workspace, exactly as `make demo` runs it (small size, drift sooner).

The demo starts the head job through the API each cycle and CML starts each dependent when its
parent succeeded, so this is also the test that the job chain runs as CML runs it.
"""

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

from tests.project import make_project

#: Two healthy hours, then drift: the 3rd cycle's traffic drifts, the 4th breaches and redeploys.
DRIFT_AFTER = {"scenario": {"drift": {"start_after": "2h"}}}
CYCLES = 7
JOBS = ("simulate_traffic", "compute_accuracy", "evaluate_thresholds", "redeploy")
DEMO_TIMEOUT_S = 600


@pytest.mark.timeout(DEMO_TIMEOUT_S + 60)  # a minute alone; a loaded 2-core machine can take several
def test_demo_breach_single_redeploy_and_recovery(tmp_path):
    config = make_project(tmp_path, DRIFT_AFTER)
    out = tmp_path / "demo-output"
    cli = [sys.executable, "-m", "monitoring.app.cli"]
    common = ["--config", str(config), "--project-root", str(tmp_path)]
    try:
        proc = subprocess.run(
            [*cli, "demo", *common, "--out", str(out), "--cycles", str(CYCLES)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=DEMO_TIMEOUT_S,
        )
    finally:  # a demo stopped half-way (a timeout) leaves its workspace daemon running
        subprocess.run([*cli, "local", "down", *common], cwd=tmp_path, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((out / "summary.json").read_text())
    assert [r["cycle"] for r in rows] == list(range(1, CYCLES + 1))
    for row in rows:
        assert set(row) >= {"cycle", "deployed_version", "predictions", "labelled", "accuracy", "decision"}
        assert row["predictions"] == 250
        assert list(row["jobs"]) == list(JOBS) and "failed" not in row["jobs"].values(), row
    decisions = [r["decision"] for r in rows]
    # Drift starts at cycle 3 (after 2h); its labels arrive in cycle 4, which must breach and redeploy.
    assert all(d in ("none", "insufficient_data") for d in decisions[:3]), decisions
    assert all(r["accuracy"] >= 0.8 for r in rows[1:3]), rows
    assert decisions[3] == "redeploy" and rows[3]["accuracy"] < 0.75, rows[3]
    assert rows[3]["jobs"]["redeploy"] == "deployed"
    assert decisions.count("redeploy") == 1, decisions
    assert rows[2]["deployed_version"] == "v1" and rows[3]["deployed_version"] == "v2"
    assert all(r["deployed_version"] == "v2" for r in rows[3:])
    # v2's first labelled window is evaluated two cycles later: accuracy is back above the threshold.
    assert decisions[-1] == "none" and rows[-1]["accuracy"] >= 0.8, rows[-1]
    # the workspace's scheduler fired the head job ("0 * * * *"): one cycle per hour, on the hour ...
    fires = [datetime.fromisoformat(r["time"].replace("Z", "+00:00")) for r in rows]
    assert all(f.minute == 0 and f.second <= 2 for f in fires), [r["time"] for r in rows]
    assert {b - a for a, b in zip(fires, fires[1:])} == {timedelta(hours=1)}
    # ... and the workspace is left on real time, with every record in the past
    offset = json.loads((tmp_path / ".cml-local" / "clock.json").read_text())["offset_ms"]
    assert abs(offset) < 60_000, offset
    assert rows[-1]["time"] < time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html
    # every job run of every cycle ends its log with its VERDICT line, as on-call reads it in CML
    logs = sorted((tmp_path / ".cml-local" / "runs").glob("*.log"))
    assert len(logs) == CYCLES * len(JOBS)
    for log in logs:
        last = [ln for ln in log.read_text().splitlines() if ln.strip()][-1]
        assert ": VERDICT job=" in last, f"{log.name}: {last}"
