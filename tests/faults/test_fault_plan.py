"""The fault plan itself: its language, its counters across processes, the admin endpoint and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from localcml.core.errors import EXIT_CONFIG, ConfigError
from localcml.faults import KILL_STEPS, Fault, FaultPlan, main
from localcml.workspace import LocalWorkspace
from monitoring.workflows import release
from tests.project import REPO


@pytest.mark.parametrize(
    "text, expected",
    [
        ("endpoint=503 x3", Fault("endpoint", "status", status=503, times=3)),
        ("endpoint=delay:2s x2", Fault("endpoint", "delay", seconds=2.0, times=2)),
        ("endpoint=refuse always", Fault("endpoint", "refuse", times=None)),
        (
            "api.create_model_deployment=500-after-create x1",
            Fault("api.create_model_deployment", "status-after", status=500),
        ),
        ("api.*=503 x2 skip=4", Fault("api.*", "status", status=503, times=2, skip=4)),
        ("api.get_model_deployment=timeout:250ms", Fault("api.get_model_deployment", "timeout", seconds=0.25)),
        ("build=fail", Fault("build", "fail")),
        ("deploy=never-healthy:3s", Fault("deploy", "never-healthy", seconds=3.0)),
        ("metrics.track_delayed_metrics=locked x5", Fault("metrics.track_delayed_metrics", "locked", times=5)),
        ("job.redeploy=kill:after_deploy", Fault("job.redeploy", "kill", step="after_deploy")),
    ],
)
def test_fault_texts_parse_and_round_trip(text, expected):
    fault = Fault.parse(text)
    assert fault == expected
    assert Fault.parse(fault.spec()) == fault


@pytest.mark.parametrize(
    "text, message",
    [
        ("endpoint", "expected POINT=ACTION"),
        ("router=503", "unknown point 'router'"),
        ("endpoint=explode", "not possible at endpoint"),
        ("build=503", "not possible at build"),
        ("api.create_everything=500", "'create_everything' is not an API v2 operation"),
        ("metrics.write=locked", "'write' is not one of"),
        ("endpoint=503 x0", "'x0' is not a count"),
        ("endpoint=delay", "delay needs a duration"),
        ("endpoint=delay:soon", "'soon' is not a duration"),
        ("job.redeploy=kill:whenever", "kill needs a step"),
        ("endpoint=200", "is not an error"),
        ("endpoint.extra=503", "takes no suffix"),
    ],
)
def test_bad_fault_texts_are_refused_naming_the_culprit(text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        Fault.parse(text)
    assert repr(text) in str(caught.value)


def test_counters_skip_wildcards_and_exhaustion(tmp_path):
    plan = FaultPlan(tmp_path)
    assert plan.take("endpoint") is None  # no plan file: nothing fires
    plan.add("api.*=503 x2 skip=1", "api.list_models=500 x1")
    fired = [plan.take("api.list_models") for _ in range(4)]
    assert [f.status if f else None for f in fired] == [None, 503, 503, 500]
    assert plan.take("api.list_models") is None and plan.take("endpoint") is None
    assert plan.fired("api.*") == 2 and plan.fired("api.list_models") == 1
    assert plan.clear("api.*") == 1 and [f.point for f in plan.faults()] == ["api.list_models"]
    assert plan.clear() == 1 and plan.faults() == []


def test_each_fault_fires_exactly_its_count_across_processes(tmp_path):
    FaultPlan(tmp_path).add("endpoint=503 x120")
    code = (
        "import sys\nfrom localcml.faults import FaultPlan\n"
        "plan = FaultPlan(sys.argv[1])\n"
        "print(sum(plan.take('endpoint') is not None for _ in range(50)))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    counts = [int(p.communicate(timeout=60)[0]) for p in procs]
    assert sum(counts) == 120
    assert FaultPlan(tmp_path).fired("endpoint") == 120


def test_a_corrupt_plan_file_is_named(tmp_path):
    (tmp_path / "faults.json").write_text("{not json")
    with pytest.raises(ConfigError, match="faults.json: the fault plan is not valid JSON"):
        FaultPlan(tmp_path).take("endpoint")


def test_command_line_adds_lists_and_clears(tmp_path, capsys):
    assert main(["--dir", str(tmp_path), "add", "endpoint=503 x3", "build=fail"]) == 0
    assert main(["--dir", str(tmp_path), "list"]) == 0
    out = capsys.readouterr().out
    assert "endpoint=503 x3" in out and "build=fail x1" in out
    assert main(["--dir", str(tmp_path), "add", "endpoint=teapot"]) == EXIT_CONFIG
    assert "'endpoint=teapot'" in capsys.readouterr().err
    assert main(["--dir", str(tmp_path), "clear"]) == 0
    assert FaultPlan(tmp_path).faults() == []


@pytest.mark.heavy  # starts a local workspace
def test_admin_endpoint_needs_the_api_key_and_changes_the_plan(tmp_path):
    (tmp_path / "p").mkdir()
    with LocalWorkspace(tmp_path / "w", tmp_path / "p") as ws:
        url = f"{ws.url}/local/v1/faults"
        auth = {"authorization": f"Bearer {ws.api_key}"}
        assert requests.get(url, timeout=10).status_code == 401
        assert (
            requests.post(
                url, json={"add": ["build=fail"]}, headers={"authorization": "Bearer nope"}, timeout=10
            ).status_code
            == 401
        )
        bad = requests.post(url, json={"add": ["endpoint=teapot"]}, headers=auth, timeout=10)
        assert bad.status_code == 400 and "endpoint=teapot" in bad.json()["message"]
        ok = requests.post(url, json={"add": ["endpoint=503 x3", "build=fail"]}, headers=auth, timeout=10)
        assert ok.status_code == 200
        assert [f["spec"] for f in ok.json()["faults"]] == ["endpoint=503 x3", "build=fail x1"]
        assert [f.spec() for f in ws.faults.faults()] == ["endpoint=503 x3", "build=fail x1"]
        cleared = requests.post(url, json={"clear": True}, headers=auth, timeout=10)
        assert cleared.json() == {"faults": []}
        assert json.loads((ws.workspace_dir / "faults.json").read_text()) == {"faults": []}


def test_the_release_path_carries_no_rehearsal_code():
    """Kill points are the workspace's business (it watches the run's build and deployment), not the library's."""
    source = Path(release.__file__).read_text()
    for word in ("SIGKILL", "os.kill", "checkpoint", "CML_MONITOR_FAULT", "CML_MONITOR_WORKSPACE", "kill"):
        assert word not in source, word
    assert Fault.parse("job.redeploy=kill:after_deploy").step in KILL_STEPS
