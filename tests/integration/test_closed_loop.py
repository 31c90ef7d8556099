"""The closed loop end to end on the local workspace, exactly as `make demo` runs it (small size)."""

import json
import subprocess
import sys
import time
from datetime import datetime, timedelta

from tests.project import make_project


def test_demo_breach_single_redeploy_and_recovery(tmp_path):
    config = make_project(tmp_path)
    out = tmp_path / "demo-output"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitoring.app.cli",
            "demo",
            "--config",
            str(config),
            "--project-root",
            str(tmp_path),
            "--out",
            str(out),
            "--cycles",
            "9",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = json.loads((out / "summary.json").read_text())
    assert [r["cycle"] for r in rows] == list(range(1, 10))
    for row in rows:
        assert set(row) >= {"cycle", "deployed_version", "predictions", "labelled", "accuracy", "decision"}
        assert row["predictions"] == 250
    decisions = [r["decision"] for r in rows]
    # Drift starts at cycle 5 (after 4h); its labels arrive in cycle 6, which must breach and redeploy.
    assert all(d in ("none", "insufficient_data") for d in decisions[:5]), decisions
    assert all(r["accuracy"] >= 0.8 for r in rows[1:5]), rows
    assert decisions[5] == "redeploy" and rows[5]["accuracy"] < 0.75, rows[5]
    assert decisions.count("redeploy") == 1, decisions
    assert rows[4]["deployed_version"] == "v1" and rows[5]["deployed_version"] == "v2"
    assert all(r["deployed_version"] == "v2" for r in rows[5:])
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
