"""Bad configuration through a job's front door: exit code 2, a VERDICT naming the culprit, nothing touched."""

from __future__ import annotations

import contextlib
import hashlib
import io
from pathlib import Path

import pytest
import yaml

from monitoring.app.cli import main
from monitoring.app.demo import verdict_fields
from monitoring.core.errors import EXIT_CONFIG
from monitoring.state.store import StateStore
from tests.project import REPO

GOOD = yaml.safe_load((REPO / "config" / "pipeline.yaml").read_text())
HOSTILE_TAG = "!!python/object/apply:os.system ['touch {marker}']"


def edited(change) -> str:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    change(data)
    return yaml.safe_dump(data, sort_keys=False)


def set_key(path: str, value):
    def change(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


def graph(*jobs: dict):
    def change(data: dict) -> None:
        data["jobs"]["graph"] = [{"script": "jobs/simulate_traffic.py", **j} for j in jobs]
        data["jobs"]["graph"].append({"name": "redeploy", "script": "jobs/redeploy.py", "parent": jobs[0]["name"]})

    return change


ABUSES = {
    "malformed yaml": ("model:\n  name: [unclosed\n", ["not valid YAML at line 3, column 1"]),
    "empty file": ("", ["expected a mapping at the top level, got NoneType"]),
    "top level is a list": ("- model\n- jobs\n", ["expected a mapping at the top level, got list"]),
    "unknown key": (edited(set_key("thresholds.polices", [])), ["thresholds.polices: unknown key"]),
    "wrong type": (edited(set_key("scenario.rows_per_cycle", "lots")), ["scenario.rows_per_cycle:", "integer"]),
    "wrong type in a list": (edited(set_key("model.features", "iot_signal_1")), ["model.features:", "list"]),
    "threshold above 1": (
        edited(set_key("thresholds.policies.1.min", 1.5)),
        ["thresholds.policies[1].min:", "less than or equal to 1"],
    ),
    "negative cooldown": (edited(set_key("thresholds.cooldown", "-2h")), ["thresholds.cooldown:", "duration"]),
    "confidence out of range": (
        edited(set_key("thresholds.policies.2.confidence", 1.0)),
        ["thresholds.policies[2].confidence:", "less than 1"],
    ),
    "cycle in the job graph": (
        edited(graph({"name": "a", "parent": "b"}, {"name": "b", "parent": "a"})),
        ["dependency cycle: a -> b -> a"],
    ),
    "missing parent": (
        edited(graph({"name": "a", "schedule": "0 * * * *"}, {"name": "b", "parent": "ghost"})),
        ["job 'b': parent 'ghost' is not in the graph"],
    ),
    "duplicate job names": (
        edited(graph({"name": "a", "schedule": "0 * * * *"}, {"name": "a", "parent": "a"})),
        ["job 'a': duplicate name"],
    ),
    "python tag": (None, ["not valid YAML", "python/object/apply"]),
}


@pytest.fixture
def project(tmp_path):
    """A project directory with a state store holding one deployment row (to prove nothing is touched)."""
    root = tmp_path / "project"
    (root / "var").mkdir(parents=True)
    with StateStore("sqlite:///var/state.db", base_dir=root) as store:
        store.record_deployment("m", "crn:dep", "crn:model", "b", "v1", 1, "test")
    return root


def digest(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.suffix != ".yaml"
    }


@pytest.mark.parametrize("name", list(ABUSES))
def test_bad_config_fails_the_job_with_exit_2_naming_the_field(project, name):
    text, expected = ABUSES[name]
    marker = project / "pwned"
    config = project / "bad.yaml"
    config.write_text(text if text is not None else f"model: {HOSTILE_TAG.format(marker=marker)}\n")
    before = digest(project)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["compute-accuracy", "--config", str(config), "--project-root", str(project)])
    verdict = verdict_fields(out.getvalue())
    assert code == EXIT_CONFIG, out.getvalue()
    assert verdict["status"] == "failed" and verdict["exit_code"] == str(EXIT_CONFIG)
    text_out = out.getvalue()
    assert str(config) in text_out
    for fragment in expected:
        assert fragment in text_out, (fragment, text_out)
    assert "fix the configuration" in verdict["action"]
    assert digest(project) == before and not marker.exists()


def test_the_verdict_line_itself_names_the_culprit(project):
    config = project / "bad.yaml"
    config.write_text(ABUSES["unknown key"][0])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["compute-accuracy", "--config", str(config), "--project-root", str(project)])
    assert "thresholds.polices: unknown key" in verdict_fields(out.getvalue())["summary"]
