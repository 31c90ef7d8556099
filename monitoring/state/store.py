"""The pipeline's own state store: watermarks, windows, decisions, deployments, the replay's position; pending labels
through its ``label_queue``, leases and aggregates through theirs."""

from __future__ import annotations

import json
import uuid as uuid_mod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from monitoring.core.db import SQLITE_BUSY_TIMEOUT_MS, Database
from monitoring.core.errors import DataError, StoreError
from monitoring.domain.decisions.decision import Decision
from monitoring.domain.windows.results import LATENCY, WindowMetrics, number_or_none
from monitoring.state.aggregates import AggregateLedger
from monitoring.state.label_queue import LabelQueue
from monitoring.state.leases import Leases
from monitoring.state.migrations import (
    LATEST,
    TASK_METRIC_COLUMNS,
    WINDOW_COUNT_COLUMNS,
    WINDOW_ESTIMATE_COLUMNS,
    migrate,
)
from monitoring.state.readonly import ReadOnlyDatabase

#: The schema version this release writes (``migrations.LATEST``).
SCHEMA_VERSION = LATEST
ID_ATTEMPTS = 20
#: The outcome that marks a decision as an actual redeploy (counted by cooldown and the daily cap).
DEPLOYED = "deployed"

#: Schema version 1, the baseline: frozen. Change the schema with a migration (migrations.py).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY);
CREATE TABLE IF NOT EXISTS scenario (model TEXT PRIMARY KEY, epoch_ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS pending_labels (uuid TEXT PRIMARY KEY, deployment_crn TEXT NOT NULL,
    label INTEGER NOT NULL, due_ms BIGINT NOT NULL, posted_ms BIGINT);
CREATE INDEX IF NOT EXISTS pending_labels_due ON pending_labels (posted_ms, due_ms);
CREATE TABLE IF NOT EXISTS deployments (seq {pk}, deployment_crn TEXT NOT NULL UNIQUE, model TEXT NOT NULL,
    model_crn TEXT, build_id TEXT, version TEXT, deployed_ms BIGINT NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS deployments_model ON deployments (model, deployed_ms);
CREATE TABLE IF NOT EXISTS watermarks (deployment_crn TEXT PRIMARY KEY, ms BIGINT NOT NULL);
CREATE TABLE IF NOT EXISTS windows (deployment_crn TEXT NOT NULL, start_ms BIGINT NOT NULL, end_ms BIGINT NOT NULL,
    predictions INTEGER NOT NULL, labelled INTEGER NOT NULL, metric_accuracy DOUBLE PRECISION,
    metric_precision DOUBLE PRECISION, metric_recall DOUBLE PRECISION, metric_f1 DOUBLE PRECISION,
    confusion TEXT NOT NULL, drift TEXT NOT NULL, latency_p50_ms DOUBLE PRECISION, latency_p95_ms DOUBLE PRECISION,
    PRIMARY KEY (deployment_crn, start_ms));
CREATE TABLE IF NOT EXISTS decisions (seq {pk}, id TEXT NOT NULL UNIQUE, created_ms BIGINT NOT NULL,
    model TEXT NOT NULL, deployment_crn TEXT NOT NULL, action TEXT NOT NULL, body TEXT NOT NULL,
    consumed_by TEXT, consumed_ms BIGINT, outcome TEXT, outcome_detail TEXT, finished_ms BIGINT);
CREATE INDEX IF NOT EXISTS decisions_model ON decisions (model, created_ms)
"""
_FIRST_METRICS = ("accuracy", "precision", "recall", "f1")  # schema version 1's metric columns
#: Window columns of later schema versions, in order: every task's metrics and their bounds (version 3).
ADDED_WINDOW_COLUMNS = (*(f"metric_{m}" for m in TASK_METRIC_COLUMNS), "bounds")
_WINDOW_COLS = (
    "deployment_crn, start_ms, end_ms, predictions, labelled, metric_accuracy, metric_precision, "
    "metric_recall, metric_f1, confusion, drift, latency_p50_ms, latency_p95_ms, "
    + ", ".join((*ADDED_WINDOW_COLUMNS, *WINDOW_COUNT_COLUMNS, *WINDOW_ESTIMATE_COLUMNS))
)
_WINDOW_PARAMS = ", ".join("?" * len(_WINDOW_COLS.split(", ")))
_DEPLOY_COLS = "model, deployment_crn, model_crn, build_id, version, deployed_ms, reason"
_DECISION_COLS = "id, body, consumed_by, outcome, outcome_detail"


@dataclass(frozen=True)
class DeploymentRow:
    """One deployment of a model, as recorded by the pipeline."""

    model: str
    deployment_crn: str
    model_crn: str | None
    build_id: str | None
    version: str | None
    deployed_ms: int
    reason: str | None


@dataclass(frozen=True)
class ReplayProgress:
    """How far a data set replay has come: rows ``[0, position)`` of its plan were sent (as of ``updated_ms``)."""

    model: str
    epoch_ms: int
    position: int
    total: int
    digest: str
    updated_ms: int | None = None


def _deployment(row: Sequence[Any]) -> DeploymentRow:
    return DeploymentRow(row[0], row[1], row[2], row[3], row[4], int(row[5]), row[6])


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, allow_nan=False)


class StateStore:
    """The pipeline state shared by job runs, on SQLite (default) or PostgreSQL.

    Jobs open it through ``health.StoreOpening`` (checked); this constructor only creates and
    migrates the schema.

    Args:
        url: ``sqlite:///path.db`` (relative to ``base_dir``) or ``postgresql://...``.
        base_dir: directory for relative SQLite paths.
        suffix: returns the random part of new decision ids (6 hex digits); injectable for tests.
        busy_timeout_ms: how long a statement waits for another process's lock (``state.busy_timeout``).
        read_only: open it for reading only (``readonly.ReadOnlyDatabase``): nothing is created or
            migrated, and any write fails.
    Raises:
        ConfigError: an unsupported URL.
        StoreError: the store was written by a newer schema version, or is damaged.
        NoSpaceError, LockedError: creating or migrating the schema failed.
        DataError: read-only: the store does not exist or has no schema yet.
    """

    def __init__(
        self,
        url: str,
        base_dir: str | Path | None = None,
        suffix: Callable[[], str] | None = None,
        busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        *,
        read_only: bool = False,
    ):
        if read_only:
            self.db: Database = ReadOnlyDatabase(url, base_dir, busy_timeout_ms=busy_timeout_ms)
        else:
            self.db = Database(url, base_dir, what="state store", busy_timeout_ms=busy_timeout_ms)
        self._suffix = suffix or (lambda: uuid_mod.uuid4().hex[:6])
        try:
            if read_only:
                self._check_schema()
            else:
                migrate(self.db, _SCHEMA.format(pk=self.db.autoincrement_pk))
        except BaseException:
            self.db.close()
            raise
        self.leases = Leases(self.db)
        self.aggregates = AggregateLedger(self.db)
        self.label_queue = LabelQueue(self.db, self.leases)

    def _check_schema(self) -> None:
        if not self.db.table_exists("schema_version"):
            raise DataError(f"state store {self.db.where} has no pipeline tables yet: the jobs have not run against it")
        found = self.schema_version()
        if found > SCHEMA_VERSION:
            raise StoreError(
                f"state store {self.db.where} has schema version {found}, newer than this cml-monitor "
                f"understands ({SCHEMA_VERSION})",
                f"upgrade cml-monitor to a release that knows schema version {found}; nothing was changed",
            )

    def schema_version(self) -> int:
        return int(self.db.query_aggregate("SELECT MAX(version) FROM schema_version")[0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- scenario epoch ---------------------------------------------------------------------
    def scenario_epoch(self, model: str) -> int | None:
        row = self.db.query_one("SELECT epoch_ms FROM scenario WHERE model = ?", (model,))
        return None if row is None else int(row[0])

    def set_scenario_epoch_if_absent(self, model: str, ms: int) -> int:
        """Store the scenario start for ``model`` unless one exists. Returns: the stored epoch."""
        self.db.execute(
            "INSERT INTO scenario (model, epoch_ms) VALUES (?, ?) ON CONFLICT (model) DO NOTHING", (model, int(ms))
        )
        stored = self.scenario_epoch(model)
        assert stored is not None  # written just now, or before
        return stored

    # -- data set replay --------------------------------------------------------------------
    def replay_progress(self, model: str) -> ReplayProgress | None:
        row = self.db.query_one(
            "SELECT model, epoch_ms, position, total, digest, updated_ms FROM replay WHERE model = ?", (model,)
        )
        if row is None:
            return None
        updated = None if row[5] is None else int(row[5])
        return ReplayProgress(str(row[0]), int(row[1]), int(row[2]), int(row[3]), str(row[4]), updated)

    def start_replay(self, model: str, epoch_ms: int, total: int, digest: str, now_ms: int) -> ReplayProgress:
        """Record a replay's start unless one is recorded. Returns: the stored progress (maybe an earlier one)."""
        self.db.execute(
            "INSERT INTO replay (model, epoch_ms, position, total, digest, updated_ms) VALUES (?, ?, 0, ?, ?, ?) "
            "ON CONFLICT (model) DO NOTHING",
            (model, int(epoch_ms), int(total), digest, int(now_ms)),
        )
        stored = self.replay_progress(model)
        assert stored is not None  # written just now, or before
        return stored

    def move_replay(self, model: str, position: int, now_ms: int) -> None:
        """Set the replay's position: rows ``[0, position)`` of the plan are sent (or claimed by a run now sending).

        A run claims its rows before it sends them (a run killed mid-way never sends them twice)
        and, when it ends, moves the position back to the first row it did not send.
        """
        with self.db.transaction() as db:
            db.execute(
                "UPDATE replay SET position = ?, updated_ms = ? WHERE model = ?", (int(position), int(now_ms), model)
            )

    # -- deployments ------------------------------------------------------------------------
    def record_deployment(
        self,
        model: str,
        deployment_crn: str,
        model_crn: str | None,
        build_id: str | None,
        version: str | None,
        deployed_ms: int,
        reason: str | None,
    ) -> None:
        """Record a deployment; recording the same CRN again changes nothing."""
        self.db.execute(
            f"INSERT INTO deployments ({_DEPLOY_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (deployment_crn) DO NOTHING",
            (model, deployment_crn, model_crn, build_id, version, int(deployed_ms), reason),
        )

    def current_deployment(self, model: str) -> DeploymentRow | None:
        """The most recently recorded deployment (by sequence: a clock that moved back cannot reorder them)."""
        row = self.db.query_one(
            f"SELECT {_DEPLOY_COLS} FROM deployments WHERE model = ? ORDER BY seq DESC LIMIT 1",
            (model,),
        )
        return None if row is None else _deployment(row)

    def deployments(self, model: str) -> list[DeploymentRow]:
        """A model's deployments in the order they were recorded (each replaced the one before)."""
        rows = self.db.query(f"SELECT {_DEPLOY_COLS} FROM deployments WHERE model = ? ORDER BY seq", (model,))
        return [_deployment(r) for r in rows]

    # -- watermarks -------------------------------------------------------------------------
    def watermark(self, deployment_crn: str) -> int | None:
        row = self.db.query_one("SELECT ms FROM watermarks WHERE deployment_crn = ?", (deployment_crn,))
        return None if row is None else int(row[0])

    def set_watermark(self, deployment_crn: str, ms: int) -> int:
        """Advance the watermark; an earlier ``ms`` is ignored. Returns: the stored watermark."""
        self.db.execute(
            "INSERT INTO watermarks (deployment_crn, ms) VALUES (?, ?) ON CONFLICT (deployment_crn) "
            "DO UPDATE SET ms = excluded.ms WHERE excluded.ms > watermarks.ms",
            (deployment_crn, int(ms)),
        )
        stored = self.watermark(deployment_crn)
        assert stored is not None  # written just now
        return stored

    # -- windows ----------------------------------------------------------------------------
    def upsert_windows(self, rows: Iterable[Any]) -> int:
        """Insert or overwrite windows by (deployment_crn, start_ms). Returns: how many were written.

        Raises:
            DataError: a row lacks the identifying fields or holds non-JSON values.
        """
        data = []
        for obj in rows:
            w = WindowMetrics.from_obj(obj)
            try:
                blobs = (_dumps(w.confusion), _dumps(w.drift), _dumps(w.bounds))
            except (TypeError, ValueError) as exc:
                raise DataError(
                    f"window {w.deployment_crn}@{w.start_ms}: confusion/drift/bounds not JSON: {exc}"
                ) from exc
            data.append(
                (
                    w.deployment_crn,
                    w.start_ms,
                    w.end_ms,
                    w.predictions,
                    w.labelled,
                    *(getattr(w, m) for m in _FIRST_METRICS),
                    *blobs[:2],
                    *(number_or_none(getattr(w, k)) for k in LATENCY),
                    *(getattr(w, m) for m in TASK_METRIC_COLUMNS),
                    blobs[2],
                    *(getattr(w, c) for c in WINDOW_COUNT_COLUMNS),
                    *(_dumps(getattr(w, c)) for c in WINDOW_ESTIMATE_COLUMNS),
                )
            )
        updates = ", ".join(f"{c} = excluded.{c}" for c in _WINDOW_COLS.split(", ")[2:])
        with self.db.transaction() as db:
            db.executemany(
                f"INSERT INTO windows ({_WINDOW_COLS}) VALUES ({_WINDOW_PARAMS}) "
                f"ON CONFLICT (deployment_crn, start_ms) DO UPDATE SET {updates}",
                data,
            )
        return len(data)

    def windows(
        self, deployment_crn: str | None = None, since_ms: int | None = None, model: str | None = None
    ) -> list[WindowMetrics]:
        """Stored windows ordered by start; filters combine.

        Args:
            deployment_crn: only this deployment's windows.
            since_ms: only windows starting at or after this time.
            model: only windows of deployments recorded for this model.
        """
        filters = [
            (c, v)
            for c, v in (
                ("deployment_crn = ?", deployment_crn),
                ("start_ms >= ?", since_ms),
                ("deployment_crn IN (SELECT deployment_crn FROM deployments WHERE model = ?)", model),
            )
            if v is not None
        ]
        where, params = [c for c, _ in filters], [v for _, v in filters]
        sql = f"SELECT {_WINDOW_COLS} FROM windows" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY start_ms, deployment_crn"
        extra = TASK_METRIC_COLUMNS
        return [
            WindowMetrics(  # type: ignore[misc]  # the metric and count columns, by name
                r[0],
                int(r[1]),
                int(r[2]),
                int(r[3]),
                int(r[4]),
                *r[5:9],
                confusion=json.loads(r[9]),
                drift=json.loads(r[10]),
                latency_p50_ms=r[11],
                latency_p95_ms=r[12],
                bounds=json.loads(r[13 + len(extra)]),
                **dict(zip(extra, r[13 : 13 + len(extra)])),
                **{c: None if v is None else int(v) for c, v in zip(WINDOW_COUNT_COLUMNS, r[14 + len(extra) :])},  # type: ignore[arg-type]
                **{
                    c: json.loads(v) if v else {}
                    for c, v in zip(WINDOW_ESTIMATE_COLUMNS, r[-len(WINDOW_ESTIMATE_COLUMNS) :])
                },
            )
            for r in self.db.query(sql, params)
        ]

    # -- decisions --------------------------------------------------------------------------
    def _new_id(self, created_ms: int) -> str:
        stamp = datetime.fromtimestamp(created_ms / 1000, tz=timezone.utc).strftime("%Y%m%d%H%M%S")
        return f"d-{stamp}-{self._suffix()}"

    def add_decision(self, decision: Decision) -> str:
        """Store a decision under a new unique id (or its own ``id`` when set). Returns: the id.

        Raises:
            DataError: the decision's preset id exists already, or no free id was found.
        """
        body = _dumps(decision.to_dict())
        for _ in range(1 if decision.id else ID_ATTEMPTS):
            new_id = decision.id or self._new_id(decision.created_ms)
            cur = self.db.execute(
                "INSERT INTO decisions (id, created_ms, model, deployment_crn, action, body, consumed_by, outcome, "
                "outcome_detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                (
                    new_id,
                    int(decision.created_ms),
                    decision.model,
                    decision.deployment_crn,
                    decision.action.value,
                    body,
                    decision.consumed_by,
                    decision.outcome,
                    decision.outcome_detail,
                ),
            )
            if cur.rowcount == 1:
                return new_id
        raise DataError(
            f"decision id {decision.id!r} already exists in the state store"
            if decision.id
            else f"no free decision id after {ID_ATTEMPTS} attempts (is the id suffix random?)"
        )

    def _decision(self, row: tuple[Any, ...] | None) -> Decision | None:
        if row is None:
            return None
        d = Decision.from_dict(json.loads(row[1]))
        d.id, d.consumed_by, d.outcome, d.outcome_detail = row[0], row[2], row[3], row[4]
        return d

    def decision(self, decision_id: str) -> Decision | None:
        return self._decision(self.db.query_one(f"SELECT {_DECISION_COLS} FROM decisions WHERE id = ?", (decision_id,)))

    def latest_decision(self, model: str) -> Decision | None:
        """The decision stored last (by sequence, never by time: the clock may have moved back)."""
        return self._decision(
            self.db.query_one(
                f"SELECT {_DECISION_COLS} FROM decisions WHERE model = ? ORDER BY seq DESC LIMIT 1",
                (model,),
            )
        )

    def list_decisions(self, model: str | None = None, limit: int = 50) -> list[Decision]:
        """Decisions newest (last stored) first, optionally for one model."""
        where, params = ("WHERE model = ? ", [model]) if model is not None else ("", [])
        rows = self.db.query(
            f"SELECT {_DECISION_COLS} FROM decisions {where}ORDER BY seq DESC LIMIT ?",
            [*params, int(limit)],
        )
        return [d for d in map(self._decision, rows) if d is not None]  # a row is never None

    def claim_decision(self, decision_id: str, run_id: str, now_ms: int) -> bool:
        """Claim a decision for one run, atomically, across threads and processes.

        Returns:
            True for the first claimer only; False when it was already claimed.
        Raises:
            DataError: no decision has this id.
        """
        with self.db.transaction() as db:
            cur = db.execute(
                "UPDATE decisions SET consumed_by = ?, consumed_ms = ? WHERE id = ? AND consumed_by IS NULL",
                (str(run_id), int(now_ms), decision_id),
            )
            if cur.rowcount == 1:
                return True
            if db.query_one("SELECT 1 FROM decisions WHERE id = ?", (decision_id,)) is None:
                raise DataError(f"decision {decision_id!r} not found in the state store")
            return False

    def finish_decision(self, decision_id: str, outcome: str, detail: str, now_ms: int) -> None:
        """Record what was done about a decision (e.g. outcome "deployed", "rolled_back", "no_action").

        Raises:
            DataError: no decision has this id.
        """
        cur = self.db.execute(
            "UPDATE decisions SET outcome = ?, outcome_detail = ?, finished_ms = ? WHERE id = ?",
            (outcome, detail, int(now_ms), decision_id),
        )
        if cur.rowcount != 1:
            raise DataError(f"decision {decision_id!r} not found in the state store")

    def redeploys_since(self, model: str, since_ms: int) -> list[int]:
        """When redeploys (outcome "deployed") of ``model`` finished, at or after ``since_ms``, ascending."""
        rows = self.db.query(
            "SELECT COALESCE(finished_ms, created_ms) FROM decisions WHERE model = ? AND "
            "outcome = ? AND COALESCE(finished_ms, created_ms) >= ? ORDER BY 1",
            (model, DEPLOYED, int(since_ms)),
        )
        return [int(r[0]) for r in rows]
