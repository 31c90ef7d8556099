"""Helpers for the dashboard tests: a filled state store, its config, a fixed clock, the JSON schema."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from monitoring.app.dashboard.server import SCHEMA_FILE, create_app
from monitoring.config.pipeline import PipelineConfig
from monitoring.state.job_runs import JobRunRow, record_job_run
from monitoring.state.store import StateStore
from tests.report.report_support import HOSTILE, NOW, config, fill

#: A secret planted in the environment, the config and a stored reason: no response may carry it.
PLANTED = "pl4nted-s3cret-7f2a9c"


class FixedClock:
    def __init__(self, now_ms: int = NOW):
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


@dataclass
class RunPlatform:
    """What ``run_job`` reads of the platform around a workflow: the engine's run id and the clock."""

    run_id: str
    clock: FixedClock


def store_config(db: Path, name: str = HOSTILE, edit=None) -> PipelineConfig:
    """The report tests' config (hostile model name, a drift policy) on the SQLite file ``db``, which
    lies in the project (the test's directory, ``db.parent`` or above it up to ``tmp``)."""
    cfg = config(name)
    data = cfg.model_dump(mode="json", exclude_none=True)
    data["state"]["url"] = f"sqlite:///{db.name if db.parent.name != 'var' else 'var/' + db.name}"
    if edit:
        edit(data)
    return PipelineConfig.model_validate(data)


def filled(db: Path, name: str = HOSTILE) -> None:
    """13 windows, 3 decisions and 3 deployments (the report tests' data), plus two job runs."""
    with StateStore(f"sqlite:///{db}") as store:
        fill(store, name)
        record_job_run(
            store,
            JobRunRow("compute_accuracy", "run-1", name, "ok", 0, "13 windows", "none", {"windows": 13}, NOW - 60_000),
        )
        record_job_run(
            store,
            JobRunRow(
                "redeploy", "run-2", name, "failed", 5, "build failed <b>hard</b>", "restore v1", {}, NOW - 30_000
            ),
        )


def client(cfg: PipelineConfig, root: Path, now_ms: int = NOW):
    return create_app(cfg, root, clock=FixedClock(now_ms)).test_client()


def schema_check(payload: object, shape: str) -> None:
    """Raises jsonschema.ValidationError when ``payload`` is not the documented ``shape``."""
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.validate(payload, {**schema, "$ref": f"#/$defs/{shape}"})
