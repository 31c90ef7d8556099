"""What a run checks before it creates anything: each job what it uses, every problem at once, naming its key."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from monitoring.app.preflight import demo_jobs, preflight
from monitoring.config.pipeline import PipelineConfig, load_config
from monitoring.core.errors import ConfigError
from monitoring.domain.training.estimators import load_trainer
from tests.project import REPO

BROKEN_TRAINER = "examples.churn.nothere:train"
MISSING_EXPORTS = {"kind": "parquet", "path": "exports/*.parquet"}


def config(tmp_path: Path, edit: Callable[[dict], None], example: str = "pipeline.yaml") -> PipelineConfig:
    """The churn example's config (``example``) with ``edit`` applied; its paths resolve against the repo."""
    data = yaml.safe_load((REPO / "examples/churn" / example).read_text())
    edit(data)
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def broken(data: dict) -> None:
    data["model"]["trainer"] = BROKEN_TRAINER
    data["data"]["retraining"]["source"] = MISSING_EXPORTS


def problems(cfg: PipelineConfig, jobs: list[str], root: Path = REPO) -> list[str]:
    try:
        preflight(cfg, root, jobs, env={})
    except ConfigError as exc:
        return exc.problems
    return []


def test_each_job_checks_what_it_uses_and_lists_every_problem_at_once(tmp_path):
    cfg = config(tmp_path, broken)
    trainer = "model.trainer: cannot import 'examples.churn.nothere'"
    exports = "data.retraining.source.path: no file matches 'exports/*.parquet' under the project root"
    got = problems(cfg, ["redeploy"])
    assert len(got) == 2 and got[0].startswith(trainer) and got[1].startswith(exports)
    assert [p[: len(trainer)] for p in problems(cfg, ["bootstrap"])] == [trainer]  # no retraining at bootstrap
    for job in ("simulate_traffic", "compute_accuracy", "evaluate_thresholds", "check_deployment"):
        assert problems(cfg, [job]) == [], job  # they neither train nor read the retraining data
    assert len(problems(cfg, demo_jobs(cfg))) == 2
    assert demo_jobs(cfg) == ["bootstrap", "simulate_traffic", "compute_accuracy", "evaluate_thresholds", "redeploy"]


def test_a_ground_truth_feed_may_wait_for_its_first_file_but_not_for_its_url(tmp_path):
    cfg = config(tmp_path, lambda d: None, "production.yaml")
    assert problems(cfg, ["ground_truth"]) == []  # crm/churn-outcomes-*.csv has not landed: not an error

    def sql(data: dict) -> None:
        data["ground_truth"]["source"] = {
            "kind": "sql",
            "query": "SELECT * FROM outcomes WHERE closed_at >= :watermark",
            "url_env": "CRM_DB_URL",
            "time_column": "closed_at",
        }

    cfg = config(tmp_path, sql, "production.yaml")
    assert problems(cfg, ["ground_truth"]) == [
        "ground_truth.source.url_env: CRM_DB_URL is not set: it must hold the SQLAlchemy URL of the data's database"
    ]


def test_the_synthetic_scenario_for_another_spec_is_refused_before_the_run(tmp_path):
    def synthetic(data: dict) -> None:
        data["data"] = {"training": {"kind": "synthetic"}}

    cfg = config(tmp_path, synthetic)
    assert [p.split(":")[0] for p in problems(cfg, ["bootstrap", "simulate_traffic"])] == [
        "data.training",
        "data.replay",
    ]


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """``user_module(code)`` -> the name of a new module of the project ``tmp_path`` holding ``code``.

    ``load_trainer`` puts the project on ``sys.path`` and imports: both are undone after the test.
    """
    monkeypatch.setattr(sys, "path", list(sys.path))
    made: list[str] = []

    def write(code: str) -> str:
        name = f"trainer_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{name}.py").write_text(code)
        made.append(name)
        return name

    yield write
    for name in made:
        sys.modules.pop(name, None)


@pytest.mark.parametrize(
    ("code", "said"),
    [
        ("raise RuntimeError('no licence server')\n", "importing '{module}' failed (RuntimeError: no licence server)"),
        ("def train(frame, *, spec):\n    pass\n", "its signature is (frame, *, spec), but cml-monitor calls it with"),
        ("def train():\n    pass\n", "its signature is (), but cml-monitor calls it with two arguments, (frame, spec)"),
    ],
    ids=["fails-at-import", "keyword-only-spec", "no-arguments"],
)
def test_a_trainer_that_cannot_be_called_as_documented_is_refused_unrun(tmp_path, user_module, code, said):
    module = user_module(code)
    with pytest.raises(ConfigError, match=r"^invalid configuration:\n  model\.trainer") as err:
        load_trainer(f"{module}:train", tmp_path)
    assert said.format(module=module) in str(err.value)


@pytest.mark.parametrize("signature", ["frame, spec", "frame, spec, seed=0", "*args", "frame, spec, **options"])
def test_a_trainer_that_takes_frame_and_spec_passes(tmp_path, user_module, signature):
    module = user_module(f"def train({signature}):\n    pass\n")
    assert callable(load_trainer(f"{module}:train", tmp_path))
