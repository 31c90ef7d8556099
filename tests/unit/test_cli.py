"""The cml-monitor command: every job importable and thin, decisions listing, offline analysis."""

import ast
import csv
import importlib.util
import json
from pathlib import Path

import pytest

from monitoring.app.cli import build_parser, main
from monitoring.domain.decisions.decision import Decision
from monitoring.state.store import StateStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("path", sorted((ROOT / "jobs").glob("*.py")), ids=lambda p: p.name)
def test_every_job_imports_and_is_a_thin_composition_root(path):
    spec = importlib.util.spec_from_file_location(f"job_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no side effects at import: main() only runs under __main__
    assert callable(module.main)
    tree = ast.parse(path.read_text())
    assert len(path.read_text().splitlines()) <= 40
    imported = {
        alias.name.split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])
    }
    assert imported <= {"sys", "monitoring"}, imported
    exits = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and ast.unparse(node.func) == "sys.exit"]
    assert all(not (isinstance(a, ast.Constant) and a.value == 0) for e in exits for a in e.args)


def test_job_arguments_tolerate_cml_extras(tmp_path, capsys):
    from monitoring.app.jobrun import parse_job_args

    args = parse_job_args("x", ["-f", "/tmp/kernel-1.json", "--config", "c.yaml", "--unknown", "1"])
    assert args.config == "c.yaml"


def test_bad_config_exits_2_and_lists_every_problem(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "model: {name: m, features: [a], label: y}\nthresholds: {policies: []}\nwindows: {length: soon}\nbogus: 1\n"
    )
    code = main(["decisions", "--config", str(bad), "--project-root", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}: thresholds.policies:" in err and f"{bad}: windows.length: expected a duration" in err
    assert f"{bad}: bogus: unknown key (not allowed here)" in err
    assert not (tmp_path / "var").exists()  # nothing written


def _decision(i: int) -> Decision:
    return Decision(
        id=None,
        created_ms=1_790_000_000_000 + i * 3_600_000,
        model="telco-cell-tower-failure",
        deployment_crn="crn:x/1",
        window_start_ms=1_790_000_000_000,
        window_end_ms=1_790_003_600_000,
        values={"accuracy": 0.6 + i / 10, "labelled": 500},
        results=[],
        action="redeploy" if i == 0 else "none",
        reason=f"reason {i}",
    )


def test_decisions_lists_json(tmp_path, capsys):
    store = StateStore("sqlite:///var/state.db", base_dir=tmp_path)
    ids = [store.add_decision(_decision(i)) for i in range(3)]
    (tmp_path / "config").mkdir()
    (tmp_path / "config/pipeline.yaml").write_text((ROOT / "config/pipeline.yaml").read_text())
    assert main(["decisions", "--project-root", str(tmp_path), "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in listed] == ids[::-1]
    assert listed[-1]["action"] == "redeploy"


def test_analyze_writes_windows_csv_and_plot(tmp_path, capsys):
    records = []
    for i in range(200):
        records.append(
            {
                "modelDeploymentCrn": "crn:d",
                "modelBuildCrn": "crn:b",
                "modelCrn": "crn:m",
                "startTimeStampMs": 1_790_000_000_000 + i * 60_000,
                "endTimeStampMs": 1_790_000_000_050 + i * 60_000,
                "predictionUuid": f"u{i}",
                "metrics": {"prediction": i % 2, "final_label": str(i % 3 % 2), "input_features": {"a": float(i)}},
            }
        )
    records.append({**records[0], "predictionUuid": "", "metrics": {"accuracy": 0.5}})
    dump = tmp_path / "dump.json"
    dump.write_text(json.dumps({"metrics": records[::-1]}))
    assert main(["analyze", str(dump), "--window", "1h", "--out", str(tmp_path / "out")]) == 0
    line = capsys.readouterr().out
    assert "aggregate" in line
    with (tmp_path / "out/windows.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert rows[0]["window_start"].endswith("Z") and sum(int(r["predictions"]) for r in rows) == 200
    assert (tmp_path / "out/accuracy.png").read_bytes()[:4] == b"\x89PNG"


def test_parser_has_every_documented_command():
    commands = set(build_parser()._subparsers._group_actions[0].choices)
    assert commands == {
        "simulate-traffic",
        "ground-truth",
        "compute-accuracy",
        "evaluate-thresholds",
        "redeploy",
        "check-deployment",
        "bootstrap",
        "graph",
        "local",
        "faults",
        "demo",
        "decisions",
        "lineage",
        "rollback",
        "analyze",
        "contract",
        "state",
        "report",
        "dashboard",
    }
