"""Job runs as the pipeline records them: each run's status, exit code and VERDICT fields, for the dashboard.

The ``job_runs`` table is schema version 5 (``migrations._job_runs``). A store opened read-only
that predates it reads as one without runs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from monitoring.state.store import StateStore

_COLS = "job, run_id, model, status, exit_code, summary, action, fields, finished_ms"


@dataclass(frozen=True)
class JobRunRow:
    """One finished job run: what its VERDICT line said.

    Attributes:
        job: the job's name in code (``compute_accuracy``), not its CML display name.
        run_id: the engine (CML job run) that ran it.
        model: the monitored model.
        status: the VERDICT status (``ok``, ``breach``, ``deployed``, ``failed``, ...).
        exit_code: the job's exit code (0: success).
        summary: the VERDICT summary (what was measured or what went wrong).
        action: what a person should do (``none`` when nothing).
        fields: the VERDICT's other key=value fields.
        finished_ms: when the run ended (the pipeline's clock).
    """

    job: str
    run_id: str
    model: str
    status: str
    exit_code: int
    summary: str
    action: str
    fields: Mapping[str, Any] = field(default_factory=dict)
    finished_ms: int = 0


def _plain(value: Any) -> Any:
    """A JSON value: numbers, text, booleans and None stay; anything else becomes its text."""
    return value if value is None or isinstance(value, (bool, int, float, str)) else str(value)


def record_job_run(store: StateStore, run: JobRunRow) -> None:
    """Append one finished run.

    Raises:
        MonitoringError, sqlite3.Error, psycopg.Error: the store refused the write.
    """
    fields = json.dumps({str(k): _plain(v) for k, v in run.fields.items()}, sort_keys=True, default=str)
    store.db.execute(
        f"INSERT INTO job_runs ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run.job,
            run.run_id,
            run.model,
            run.status,
            int(run.exit_code),
            run.summary,
            run.action,
            fields,
            int(run.finished_ms),
        ),
    )


def _row(r: Sequence[Any]) -> JobRunRow:
    return JobRunRow(str(r[0]), str(r[1]), str(r[2]), str(r[3]), int(r[4]), r[5], r[6], json.loads(r[7]), int(r[8]))


def latest_job_runs(store: StateStore, model: str) -> list[JobRunRow]:
    """The last recorded run of each job of ``model``, by job name (none when nothing was recorded)."""
    if not store.db.table_exists("job_runs"):
        return []
    rows = store.db.query(
        f"SELECT {_COLS} FROM job_runs WHERE seq IN (SELECT MAX(seq) FROM job_runs WHERE model = ? GROUP BY job) "
        "ORDER BY job",
        (model,),
    )
    return [_row(r) for r in rows]


def job_runs(store: StateStore, model: str, since_ms: int, until_ms: int, limit: int = 200) -> list[JobRunRow]:
    """Runs of ``model``'s jobs that finished in ``[since_ms, until_ms)``, newest first, at most ``limit``."""
    if not store.db.table_exists("job_runs"):
        return []
    rows = store.db.query(
        f"SELECT {_COLS} FROM job_runs WHERE model = ? AND finished_ms >= ? AND finished_ms < ? "
        "ORDER BY seq DESC LIMIT ?",
        (model, int(since_ms), int(until_ms), int(limit)),
    )
    return [_row(r) for r in rows]
