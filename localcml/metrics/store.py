"""The local Model Metrics Store: CML's ``read_metrics`` record shape over SQLite or PostgreSQL.

One table holds every record. A prediction record is keyed by (deployment CRN, prediction
uuid); aggregate records (``track_aggregate_metrics``) have the uuid ``""``. ``metrics`` is a
JSON object stored as TEXT; delayed metrics are merged into it in Python inside a transaction
(row locked with ``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` serialises writers
across processes), so concurrent mergers never lose each other's keys.

Out of space: SQLite's write-ahead log is kept small (``WAL_CHECKPOINT_PAGES``), so that the log
cannot fill a small disk by itself. A write that meets a full file system (``SQLITE_FULL``;
PostgreSQL SQLSTATE 53100) first checkpoints the log into the database and truncates it, then
tries once more; if that fails too it raises ``NoSpaceError`` naming the file system, with nothing
written. No connection is left broken: the next write after space is freed succeeds.

Window semantics of :meth:`MetricsStore.read`: a record is returned when
``start_ms <= startTimeStampMs <= end_ms`` (both ends inclusive; ``end_ms=None`` means no upper
bound). Records come back ordered by ``startTimeStampMs``, then insertion order.
"""

from __future__ import annotations

import json
import logging
import math
import operator
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from cmlbase.db import Database
from cmlbase.mounts import mount_point
from localcml.core.errors import NoSpaceError

log = logging.getLogger(__name__)
T = TypeVar("T")

TABLE = "model_metrics"
#: Rows fetched per ``IN (...)`` lookup; stays far below SQLite's bound-variable limit.
LOOKUP_CHUNK = 500
#: Serialises schema creation between processes on PostgreSQL (any constant bigint).
_PG_SCHEMA_LOCK = 727_274_001
_COLUMNS = "deployment_crn, build_crn, model_crn, prediction_uuid, start_ms, end_ms, metrics"
#: PostgreSQL's SQLSTATE for a full disk.
_PG_DISK_FULL = "53100"
#: SQLite's write-ahead log is checkpointed once it holds this many pages (SQLite's default: 1000)
#: and cut back to ``WAL_SIZE_LIMIT_BYTES``: a log that grows to megabytes before its first
#: checkpoint can fill a small disk by itself, and then no checkpoint can make room for its pages.
WAL_CHECKPOINT_PAGES = 256
WAL_SIZE_LIMIT_BYTES = 1024 * 1024
_SQLITE_PRAGMAS = (
    f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}",
    f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT_BYTES}",
)


def _disk_full(exc: BaseException) -> bool:
    """Whether a driver error says the database's disk is full."""
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "") or ""
        return name == "SQLITE_FULL" or "database or disk is full" in str(exc)
    return getattr(exc, "sqlstate", None) == _PG_DISK_FULL


def _ddl(db: Database) -> str:
    return f"""
    CREATE TABLE IF NOT EXISTS {TABLE} (
        id {db.autoincrement_pk},
        deployment_crn TEXT NOT NULL,
        build_crn TEXT NOT NULL,
        model_crn TEXT NOT NULL,
        prediction_uuid TEXT NOT NULL,
        start_ms BIGINT NOT NULL,
        end_ms BIGINT NOT NULL,
        metrics TEXT NOT NULL
    );
    CREATE UNIQUE INDEX IF NOT EXISTS {TABLE}_prediction
        ON {TABLE} (deployment_crn, prediction_uuid) WHERE prediction_uuid <> '';
    CREATE INDEX IF NOT EXISTS {TABLE}_deployment_start ON {TABLE} (deployment_crn, start_ms);
    CREATE INDEX IF NOT EXISTS {TABLE}_model_start ON {TABLE} (model_crn, start_ms);
    CREATE INDEX IF NOT EXISTS {TABLE}_uuid ON {TABLE} (prediction_uuid)
    """


def _check_value(value: Any, where: str) -> None:
    """Raise ValueError unless ``value`` is plain JSON with finite numbers."""
    if value is None or isinstance(value, (bool, str, int)):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value!r} is not allowed (metrics must be finite JSON numbers)")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not (key is None or isinstance(key, (str, int, float, bool))):
                raise ValueError(f"{where}: key {key!r} is not a JSON object key")
            _check_value(item, f"{where}[{key!r}]")
        return
    raise ValueError(
        f"{where}: value of type {type(value).__name__} is not JSON-serialisable (convert numpy scalars with .item())"
    )


def encode_metrics(metrics: Any) -> str:
    """The metrics dict as JSON text, after checking every key and value.

    Args:
        metrics: a dict with string keys and JSON-serialisable, finite values.

    Returns:
        Compact JSON text.

    Raises:
        ValueError: not a dict, a non-string key, or a value (named by its key path) that is
            NaN, infinite or not JSON-serialisable.
    """
    if not isinstance(metrics, dict):
        raise ValueError(f"metrics must be a dict, got {type(metrics).__name__}")
    for key, value in metrics.items():
        if not isinstance(key, str):
            raise ValueError(f"metrics key {key!r} must be a string")
        _check_value(value, f"metrics[{key!r}]")
    return json.dumps(metrics, allow_nan=False, separators=(",", ":"))


def _record(row: Sequence[Any]) -> dict[str, Any]:
    deployment, build, model, uuid, start, end, metrics = row
    return {
        "modelDeploymentCrn": deployment,
        "modelBuildCrn": build,
        "modelCrn": model,
        "startTimeStampMs": int(start),
        "endTimeStampMs": int(end),
        "predictionUuid": uuid,
        "metrics": json.loads(metrics),
    }


def _records(rows: list[Sequence[Any]]) -> list[dict[str, Any]]:
    """``_record`` for many rows: one ``json.loads`` over all metrics texts (no per-row call overhead)."""
    if not rows:
        return []
    metrics = json.loads("[" + ",".join([row[6] for row in rows]) + "]")
    return [
        {
            "modelDeploymentCrn": deployment,
            "modelBuildCrn": build,
            "modelCrn": model,
            "startTimeStampMs": int(start),
            "endTimeStampMs": int(end),
            "predictionUuid": uuid,
            "metrics": values,
        }
        for (deployment, build, model, uuid, start, end, _), values in zip(rows, metrics)
    ]


def _check_window(start_ms: Any, end_ms: Any, what: str) -> tuple[int, int]:
    try:
        if isinstance(start_ms, bool) or isinstance(end_ms, bool):
            raise TypeError("bool")
        start, end = operator.index(start_ms), operator.index(end_ms)
    except TypeError:
        raise ValueError(
            f"{what}: start and end must be integer epoch milliseconds, got {start_ms!r} and {end_ms!r}"
        ) from None
    if end < start:
        raise ValueError(f"{what}: end {end} is before start {start}")
    return start, end


class MetricsStore:
    """CML's model metrics store on one machine.

    Args:
        url: ``sqlite:///path/metrics.db`` (default kind) or ``postgresql://...``.
        base_dir: directory for a relative SQLite path.
    """

    def __init__(self, url: str, base_dir: str | Path | None = None):
        self.db = Database(url, base_dir, sqlite_pragmas=_SQLITE_PRAGMAS)
        self._duplicate_errors: tuple[type[BaseException], ...] = (sqlite3.IntegrityError,)
        if self.db.dialect == "postgresql":
            import psycopg

            self._duplicate_errors = (psycopg.errors.UniqueViolation,)

        def create() -> None:
            with self.db.transaction() as db:
                if db.dialect == "postgresql":
                    db.execute("SELECT pg_advisory_xact_lock(?)", (_PG_SCHEMA_LOCK,))
                db.script(_ddl(db))

        self._writing("create the store's tables", create)

    def close(self) -> None:
        """Close this process's connections."""
        self.db.close()

    @property
    def where(self) -> str:
        """The store's file (SQLite) or its URL without the password."""
        return self.db.where

    def _writing(self, doing: str, write: Callable[[], T]) -> T:
        """Run ``write``; on a full disk, give back the log's space and try once more, else raise NoSpaceError.

        Raises:
            NoSpaceError: the file system (SQLite) or the server's disk (PostgreSQL) is still full;
                nothing of ``write`` was stored.
        """
        try:
            return write()
        except Exception as exc:
            if not _disk_full(exc):
                raise
            if not self._release_log():
                raise self._full(doing, exc) from exc
        try:
            return write()
        except Exception as exc:
            if not _disk_full(exc):
                raise
            raise self._full(doing, exc) from exc

    def _release_log(self) -> bool:
        """Checkpoint SQLite's write-ahead log into the database and truncate it; whether it got smaller."""
        if self.db.dialect != "sqlite":
            return False
        wal = Path(f"{self.db.path}-wal")
        before = wal.stat().st_size if wal.exists() else 0
        try:
            self.db.query("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as exc:
            log.debug("write-ahead log not checkpointed: %s", exc)
            return False
        after = wal.stat().st_size if wal.exists() else 0
        if after < before:
            log.warning("metrics store's disk was full: its write-ahead log gave back %d bytes", before - after)
        return after < before

    def _full(self, doing: str, exc: BaseException) -> NoSpaceError:
        if self.db.dialect == "sqlite":
            where = mount_point(self.db.path)
            return NoSpaceError(
                f"model metrics store out of space: no space left on {where}; could not {doing}, "
                f"nothing was written (store {self.db.where})",
                where,
            )
        return NoSpaceError(
            f"model metrics store out of space: the database server's disk is full; could not {doing}, "
            f"nothing was written (store {self.db.where}: {str(exc).splitlines()[0]})",
            self.db.where,
        )

    def track_prediction(
        self,
        deployment_crn: str,
        build_crn: str,
        model_crn: str,
        uuid: str,
        start_ms: int,
        end_ms: int,
        metrics: dict[str, Any],
    ) -> None:
        """Write one prediction's record.

        Raises:
            ValueError: empty uuid or deployment CRN, bad window, invalid metrics, or the uuid
                already has a record for this deployment.
            NoSpaceError: the store's disk is full; nothing was written.
        """
        if not uuid or not isinstance(uuid, str):
            raise ValueError("prediction uuid must be a non-empty string ('' is reserved for aggregates)")
        if not deployment_crn:
            raise ValueError(f"prediction {uuid}: model deployment CRN is required")
        start_ms, end_ms = _check_window(start_ms, end_ms, f"prediction {uuid}")
        text = encode_metrics(metrics)
        try:
            self._writing(
                f"record prediction {uuid}",
                lambda: self.db.execute(
                    f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (deployment_crn, build_crn or "", model_crn or "", uuid, start_ms, end_ms, text),
                ),
            )
        except self._duplicate_errors as exc:
            raise ValueError(f"prediction {uuid} already has a record for deployment {deployment_crn}") from exc

    def bulk_insert(self, rows: Iterable[Sequence[Any]]) -> int:
        """Append many prediction records in one transaction (bulk loads: benchmarks, migrations).

        Args:
            rows: ``(deployment_crn, build_crn, model_crn, uuid, start_ms, end_ms, metrics_text)``
                where ``metrics_text`` is a JSON object as ``encode_metrics`` writes it (stored as
                given: only its braces are checked, so encode untrusted metrics first).

        Returns:
            The number of records written.

        Raises:
            ValueError: a row without 7 fields, an empty uuid or deployment CRN, a bad window, metrics
                text that is not a JSON object, or a uuid that already has a record (nothing written).
            NoSpaceError: the store's disk is full; nothing was written.
        """
        checked = []
        for i, row in enumerate(rows):
            if len(row) != 7:
                raise ValueError(f"bulk row {i}: expected 7 fields ({_COLUMNS}), got {len(row)}")
            deployment, build, model, uuid, start, end, text = row
            if not uuid or not isinstance(uuid, str) or not deployment:
                raise ValueError(f"bulk row {i}: uuid and deployment CRN must be non-empty strings")
            start, end = _check_window(start, end, f"bulk row {i} (prediction {uuid})")
            if not (isinstance(text, str) and text.startswith("{") and text.endswith("}")):
                raise ValueError(f"bulk row {i} (prediction {uuid}): metrics must be JSON object text")
            checked.append((deployment, build or "", model or "", uuid, start, end, text))
        if not checked:
            return 0

        def insert() -> None:
            with self.db.transaction() as db:
                if db.dialect == "postgresql":
                    with db.conn.cursor() as cur, cur.copy(f"COPY {TABLE} ({_COLUMNS}) FROM STDIN") as copy:
                        for row in checked:
                            copy.write_row(row)
                else:
                    db.executemany(f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", checked)

        try:
            self._writing(f"insert {len(checked)} records", insert)
        except self._duplicate_errors as exc:
            raise ValueError(f"bulk insert: a prediction uuid already has a record: {exc}") from exc
        return len(checked)

    def track_delayed(self, metrics: dict[str, Any], prediction_uuid: str) -> None:
        """Merge ``metrics`` into an existing prediction record (e.g. ground truth).

        Raises:
            ValueError: unknown uuid (named), or invalid metrics.
            NoSpaceError: the store's disk is full; nothing was written.
        """
        self.track_delayed_many([(prediction_uuid, metrics)])

    def track_delayed_many(self, items: Iterable[tuple[str, dict[str, Any]]]) -> int:
        """Merge many ``(uuid, metrics)`` pairs in one transaction: all or nothing.

        Args:
            items: pairs of prediction uuid and the metrics to merge into that record; a uuid
                may repeat (later pairs win on the same key).

        Returns:
            The number of records updated.

        Raises:
            ValueError: any uuid has no record (nothing is written; the message names them),
                or a metrics dict is invalid.
            NoSpaceError: the store's disk is full; nothing was written.
        """
        pairs = []
        for uuid, metrics in items:
            encode_metrics(metrics)
            if not uuid or not isinstance(uuid, str):
                raise ValueError(f"delayed metrics need a prediction uuid, got {uuid!r}")
            pairs.append((uuid, metrics))
        if not pairs:
            return 0
        uuids = list(dict.fromkeys(u for u, _ in pairs))
        what = (
            f"merge delayed metrics into {len(uuids)} records"
            if len(uuids) > 1
            else f"merge delayed metrics into {uuids[0]}"
        )
        return self._writing(what, lambda: self._merge(pairs, uuids))

    def _merge(self, pairs: list[tuple[str, dict[str, Any]]], uuids: list[str]) -> int:
        lock = " FOR UPDATE" if self.db.dialect == "postgresql" else ""
        with self.db.transaction() as db:
            ids: dict[str, list[int]] = {}
            current: dict[int, dict[str, Any]] = {}
            for i in range(0, len(uuids), LOOKUP_CHUNK):
                chunk = uuids[i : i + LOOKUP_CHUNK]
                marks = ", ".join("?" * len(chunk))
                for row_id, uuid, text in db.query(
                    f"SELECT id, prediction_uuid, metrics FROM {TABLE} WHERE prediction_uuid IN ({marks}){lock}", chunk
                ):
                    ids.setdefault(uuid, []).append(row_id)
                    current[row_id] = json.loads(text)
            missing = [u for u in uuids if u not in ids]
            if missing:
                shown = ", ".join(missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
                raise ValueError(
                    f"no prediction record with uuid {shown}: track delayed metrics only for "
                    "uuids returned by a model_metrics-decorated call"
                )
            for uuid, metrics in pairs:
                for row_id in ids[uuid]:
                    current[row_id].update(metrics)
            db.executemany(
                f"UPDATE {TABLE} SET metrics = ? WHERE id = ?",
                [(json.dumps(m, allow_nan=False, separators=(",", ":")), row_id) for row_id, m in current.items()],
            )
        return len(current)

    def track_aggregate(
        self,
        metrics: dict[str, Any],
        start_ms: int,
        end_ms: int,
        deployment_crn: str,
        model_crn: str | None = None,
        build_crn: str | None = None,
    ) -> None:
        """Write an aggregate record (``predictionUuid == ""``) covering a time window.

        Like CML, the record carries the deployment's model and build CRNs even when only the
        deployment CRN is given: missing ones are taken from that deployment's latest prediction.

        Raises:
            ValueError: missing deployment CRN, bad window, or invalid metrics.
            NoSpaceError: the store's disk is full; nothing was written.
        """
        if not deployment_crn:
            raise ValueError("aggregate metrics need model_deployment_crn (the deployment's CRN)")
        start_ms, end_ms = _check_window(start_ms, end_ms, f"aggregate metrics for {deployment_crn}")
        text = encode_metrics(metrics)
        self._writing(
            f"record aggregate metrics of {deployment_crn}",
            lambda: self._aggregate(text, start_ms, end_ms, deployment_crn, model_crn, build_crn),
        )

    def _aggregate(
        self, text: str, start_ms: int, end_ms: int, deployment_crn: str, model_crn: str | None, build_crn: str | None
    ) -> None:
        with self.db.transaction() as db:
            if model_crn is None or build_crn is None:
                # newest by start time: served by the (deployment_crn, start_ms) index, not a sort of the history
                known = db.query_one(
                    f"SELECT model_crn, build_crn FROM {TABLE} WHERE deployment_crn = ? "
                    "AND prediction_uuid <> '' ORDER BY start_ms DESC, id DESC LIMIT 1",
                    (deployment_crn,),
                )
                model_crn = model_crn if model_crn is not None else (known[0] if known else "")
                build_crn = build_crn if build_crn is not None else (known[1] if known else "")
            db.execute(
                f"INSERT INTO {TABLE} ({_COLUMNS}) VALUES (?, ?, ?, '', ?, ?, ?)",
                (deployment_crn, build_crn, model_crn, start_ms, end_ms, text),
            )

    def read(
        self,
        deployment_crn: str | None = None,
        start_ms: int = 0,
        end_ms: int | None = None,
        model_crn: str | None = None,
        build_crn: str | None = None,
    ) -> list[dict[str, Any]]:
        """Records whose start lies in ``[start_ms, end_ms]``, in CML's ``read_metrics`` shape.

        Args:
            deployment_crn, model_crn, build_crn: filters; ``None`` means any.
            start_ms: inclusive lower bound on ``startTimeStampMs``.
            end_ms: inclusive upper bound; ``None`` means no bound.

        Returns:
            Dicts with exactly ``modelDeploymentCrn, modelBuildCrn, modelCrn, startTimeStampMs,
            endTimeStampMs, predictionUuid, metrics``, ordered by start then insertion.
        """
        where, params = ["start_ms >= ?"], [int(start_ms)]
        if end_ms is not None:
            where.append("start_ms <= ?")
            params.append(int(end_ms))
        for column, value in (("deployment_crn", deployment_crn), ("model_crn", model_crn), ("build_crn", build_crn)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE {' AND '.join(where)} ORDER BY start_ms, id", params
        )
        return _records(rows)

    def count(self, deployment_crn: str | None = None) -> int:
        """Number of records (prediction and aggregate), optionally for one deployment."""
        if deployment_crn is None:
            row = self.db.query_one(f"SELECT COUNT(*) FROM {TABLE}")
        else:
            row = self.db.query_one(f"SELECT COUNT(*) FROM {TABLE} WHERE deployment_crn = ?", (deployment_crn,))
        return int(row[0])
