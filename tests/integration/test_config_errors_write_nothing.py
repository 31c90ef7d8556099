"""A configuration error writes nothing (issue 19): what a run uses is checked before anything exists.

Each case is the churn example (its own config, data and trainer, copied into a project) with one
thing wrong, run as a real ``cml-monitor`` process. The run ends with the documented exit code and
a message naming the config key; afterwards the project holds exactly the files it held before:
no state store, no history marker, no local workspace directory, and no workspace daemon runs.
``bootstrap --train-only`` trains with no workspace and no state store at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from monitoring.core.errors import EXIT_CONFIG, EXIT_DATA, EXIT_OK
from tests.project import REPO, make_project

#: Seconds one command may take (imports and a training, on a busy machine).
COMMAND_TIMEOUT_S = 300
MISSING_MODULE = "examples.churn.nothere:train"
ONE_ARGUMENT = "def train(frame):\n    raise AssertionError('a trainer of the wrong shape is never called')\n"
SQL = {"kind": "sql", "query": "SELECT * FROM customers"}

Edit = Callable[[dict], None]


def trainer(entry_point: str) -> Edit:
    return lambda cfg: cfg["model"].update(trainer=entry_point)


def training(source: dict) -> Edit:
    return lambda cfg: cfg["data"].update(training=source)


def retraining(source: dict) -> Edit:
    return lambda cfg: cfg["data"]["retraining"].update(source=source)


def replay_path(path: str) -> Edit:
    return lambda cfg: cfg["data"]["replay"]["source"].update(path=path)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


CASES = {
    "bootstrap, a trainer that does not import": (
        ["bootstrap"],
        [trainer(MISSING_MODULE)],
        {},
        EXIT_CONFIG,
        ["model.trainer: cannot import 'examples.churn.nothere' (ModuleNotFoundError"],
    ),
    "bootstrap, a trainer that takes one argument": (
        ["bootstrap"],
        [trainer("examples.churn.one_argument:train")],
        {},
        EXIT_CONFIG,
        ["model.trainer 'examples.churn.one_argument:train': its signature is (frame)", "(frame, spec)"],
    ),
    "bootstrap --train-only, no training file": (
        ["bootstrap", "--train-only"],
        [training({"kind": "csv", "path": "examples/churn/data/gone.csv"})],
        {},
        EXIT_CONFIG,
        ["data.training.path: no file matches 'examples/churn/data/gone.csv' under the project root"],
    ),
    "redeploy, every problem at once": (
        ["redeploy"],
        [trainer(MISSING_MODULE), retraining({"kind": "parquet", "path": "exports/*.parquet"})],
        {},
        EXIT_CONFIG,
        ["model.trainer: cannot import", "data.retraining.source.path: no file matches 'exports/*.parquet'"],
    ),
    "simulate-traffic, no replay file": (
        ["simulate-traffic"],
        [replay_path("examples/churn/data/gone.csv")],
        {},
        EXIT_CONFIG,
        ["data.replay.source.path: no file matches 'examples/churn/data/gone.csv'"],
    ),
    "demo, a trainer that does not import": (
        ["demo", "--cycles", "1"],
        [trainer(MISSING_MODULE)],
        {},
        EXIT_CONFIG,
        ["model.trainer: cannot import 'examples.churn.nothere'"],
    ),
    "bootstrap, the SQL URL variable unset": (
        ["bootstrap"],
        [training({**SQL, "url_env": "CHURN_DB_URL"})],
        {},
        EXIT_CONFIG,
        ["data.training.url_env: CHURN_DB_URL is not set"],
    ),
    "bootstrap, no SQLite file": (
        ["bootstrap"],
        [training({**SQL, "url": "sqlite:///data/churn.db"})],
        {},
        EXIT_CONFIG,
        ["data.training.url: there is no SQLite database file", "data/churn.db"],
    ),
    "bootstrap, the database does not answer": (
        ["bootstrap"],
        [training({**SQL, "url_env": "CHURN_DB_URL"})],
        {"CHURN_DB_URL": f"postgresql://churn@127.0.0.1:{closed_port()}/churn"},
        EXIT_DATA,
        ["data.training (sql $CHURN_DB_URL): the query on postgresql+psycopg://churn@127.0.0.1:"],
    ),
}


def command(root: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """``cml-monitor ARGS --project-root ROOT`` as its own process; returns its exit code and output."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "1", **(env or {})}
    done = subprocess.run(
        [sys.executable, "-m", "monitoring.app.cli", *args, "--project-root", str(root)],
        cwd=root,
        env=environ,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    return done.returncode, done.stdout + done.stderr


def files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if "__pycache__" not in p.parts}


def daemons(root: Path) -> list[int]:
    """Processes of the local workspace of ``root`` (its daemon and what it started)."""
    needle = str(root / ".cml-local").encode()
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and needle in (proc / "cmdline").read_bytes():
                found.append(int(proc.name))
        except OSError:  # the process ended while being read
            continue
    return found


@pytest.fixture
def churn(tmp_path):
    """The churn example in a project; a workspace started by a failing run is stopped afterwards."""
    root = tmp_path / "project"
    root.mkdir()
    make_project(root, example="churn")
    (root / "examples/churn/one_argument.py").write_text(ONE_ARGUMENT)
    (root / "demo-output").mkdir()
    (root / "demo-output/summary.json").write_text("[]")  # an earlier demo's output: a refused demo keeps it
    yield root
    if (root / ".cml-local").exists():
        command(root, "local", "down")


def edit_config(root: Path, edits: list[Edit]) -> None:
    path = root / "config/pipeline.yaml"
    cfg = yaml.safe_load(path.read_text())
    for edit in edits:
        edit(cfg)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.mark.parametrize("case", list(CASES))
def test_a_config_error_is_found_before_anything_is_created(churn, case):
    args, edits, env, code, said = CASES[case]
    edit_config(churn, edits)
    before = files(churn)
    exit_code, output = command(churn, *args, env=env)
    assert exit_code == code, output[-3000:]
    for fragment in said:
        assert fragment in output, (fragment, output[-3000:])
    if args[0] != "demo":
        verdict = [ln for ln in output.splitlines() if "VERDICT " in ln][-1]
        assert f"status=failed exit_code={code}" in verdict and said[0] in verdict
    assert files(churn) == before  # no state store, no history marker, no workspace directory, no artifact
    assert daemons(churn) == []


def test_train_only_trains_without_a_workspace_or_a_state_store(tmp_path):
    root = tmp_path / "project"
    root.mkdir()
    make_project(root)
    try:
        exit_code, output = command(root, "bootstrap", "--train-only")
        assert exit_code == EXIT_OK, output[-3000:]
        assert "VERDICT job=bootstrap status=ok" in output and "trained v1 into var/models/" in output
        assert (root / "var/models/telco-cell-tower-failure/v1").is_dir()
        assert not (root / ".cml-local").exists() and daemons(root) == []
        assert not (root / "var/state.db").exists() and not (root / ".cml-monitor").exists()  # no store, no marker
    finally:
        if (root / ".cml-local").exists():
            command(root, "local", "down")
