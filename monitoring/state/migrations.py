"""Schema versions of the state store: the frozen baseline, then ordered, idempotent migrations applied at open.

Version 1 is the baseline (``store._SCHEMA``, never edited). Every later change is a
``Migration`` appended to ``MIGRATIONS`` with the next version number. ``migrate`` applies, in
one transaction, every migration newer than the store's version, and records each version in
``schema_version``; a store already at ``LATEST`` is only read, never locked for writing. Each
step must be safe to run on a store that already has it (``CREATE ... IF NOT EXISTS``,
``add_column``), so a half-written history can never break an open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from monitoring.core.db import Database
from monitoring.core.errors import StoreError

BASELINE_VERSION = 1
#: Advisory lock key serialising concurrent migrations on PostgreSQL (SQLite: BEGIN IMMEDIATE does).
_PG_SCHEMA_LOCK = 7_344_215_001


@dataclass(frozen=True)
class Migration:
    """One step of the schema: ``apply(db)`` runs inside the migrating transaction."""

    version: int
    what: str
    apply: Callable[[Database], None]


def table_columns(db: Database, table: str) -> list[str]:
    """Column names of ``table`` in order (empty when it does not exist)."""
    if db.dialect == "sqlite":
        return [str(r[1]) for r in db.query("SELECT * FROM pragma_table_info(?)", (table,))]
    rows = db.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = ? AND table_schema = current_schema() "
        "ORDER BY ordinal_position",
        (table,),
    )
    return [str(r[0]) for r in rows]


def add_column(db: Database, table: str, column: str, declaration: str) -> None:
    """``ALTER TABLE table ADD COLUMN column declaration`` unless the column exists (idempotent).

    Args:
        table, column: constant identifiers from a migration (never user input).
        declaration: the column type and constraints, e.g. ``"DOUBLE PRECISION"``.
    """
    if column not in table_columns(db, table):
        db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")


def _identity_leases_ledger(db: Database) -> None:
    db.script(
        """
        CREATE TABLE IF NOT EXISTS store_identity (singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
            store_id TEXT NOT NULL, project_id TEXT, model TEXT NOT NULL, created_ms BIGINT NOT NULL,
            created_by TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS store_settings (key TEXT PRIMARY KEY, value TEXT NOT NULL, set_ms BIGINT NOT NULL);
        CREATE TABLE IF NOT EXISTS leases (name TEXT PRIMARY KEY, holder TEXT NOT NULL, acquired_ms BIGINT NOT NULL,
            expires_ms BIGINT NOT NULL);
        CREATE TABLE IF NOT EXISTS aggregates_sent (deployment_crn TEXT NOT NULL, start_ms BIGINT NOT NULL,
            end_ms BIGINT NOT NULL, state TEXT NOT NULL, run_id TEXT NOT NULL, intent_ms BIGINT NOT NULL,
            sent_ms BIGINT, PRIMARY KEY (deployment_crn, start_ms, end_ms));
        CREATE INDEX IF NOT EXISTS decisions_model_seq ON decisions (model, seq);
        CREATE INDEX IF NOT EXISTS deployments_model_seq ON deployments (model, seq)
        """
    )


#: Metrics of schema version 3's window columns (``metric_<name>``), beyond version 1's accuracy,
#: precision, recall and F1: a classifier's from its probabilities, and a regressor's (issue 10).
TASK_METRIC_COLUMNS = ("roc_auc", "log_loss", "mae", "rmse", "mape", "r2", "bias")


def _task_metrics(db: Database) -> None:
    for metric in TASK_METRIC_COLUMNS:
        add_column(db, "windows", f"metric_{metric}", "DOUBLE PRECISION")
    add_column(db, "windows", "bounds", "TEXT NOT NULL DEFAULT '{}'")


def _label_intents(db: Database) -> None:
    db.script(
        """
        CREATE TABLE IF NOT EXISTS label_intents (run_id TEXT NOT NULL, slot INTEGER NOT NULL,
            deployment_crn TEXT NOT NULL, request TEXT NOT NULL, label TEXT NOT NULL, delay_ms BIGINT,
            due_ms BIGINT, created_ms BIGINT NOT NULL, PRIMARY KEY (run_id, slot))
        """
    )
    add_column(db, "pending_labels", "answered_ms", "BIGINT")
    add_column(db, "pending_labels", "posting_ms", "BIGINT")


def _job_runs(db: Database) -> None:
    db.script(
        f"""
        CREATE TABLE IF NOT EXISTS job_runs (seq {db.autoincrement_pk}, job TEXT NOT NULL, run_id TEXT NOT NULL,
            model TEXT NOT NULL, status TEXT NOT NULL, exit_code INTEGER NOT NULL, summary TEXT NOT NULL,
            action TEXT NOT NULL, fields TEXT NOT NULL, finished_ms BIGINT NOT NULL);
        CREATE INDEX IF NOT EXISTS job_runs_model_job ON job_runs (model, job, seq)
        """
    )


def _replay_and_any_label(db: Database) -> None:
    """Data set replays (issue 10): a watermark per model; ground truth of any type (labels were integers).

    Labels are stored as JSON text (``"Yes"``, ``350000.0``, ``1``): PostgreSQL's integer column is
    altered to text; SQLite cannot alter a column's type, so its table is copied into a new one.
    """
    db.script(
        """
        CREATE TABLE IF NOT EXISTS replay (model TEXT PRIMARY KEY, epoch_ms BIGINT NOT NULL,
            position BIGINT NOT NULL, total BIGINT NOT NULL, digest TEXT NOT NULL, updated_ms BIGINT)
        """
    )
    if db.dialect == "postgresql":
        row = db.query_one(
            "SELECT data_type FROM information_schema.columns WHERE table_schema = current_schema() "
            "AND table_name = 'pending_labels' AND column_name = 'label'"
        )
        if row is not None and row[0] != "text":
            db.execute("ALTER TABLE pending_labels ALTER COLUMN label TYPE TEXT USING label::text")
        return
    types = {str(r[1]): str(r[2]).upper() for r in db.query("SELECT * FROM pragma_table_info('pending_labels')")}
    if types.get("label", "TEXT") != "TEXT":
        db.script(
            """
            CREATE TABLE pending_labels_text (uuid TEXT PRIMARY KEY, deployment_crn TEXT NOT NULL,
                label TEXT NOT NULL, due_ms BIGINT NOT NULL, posted_ms BIGINT, answered_ms BIGINT, posting_ms BIGINT);
            INSERT INTO pending_labels_text SELECT uuid, deployment_crn, CAST(label AS TEXT), due_ms, posted_ms,
                answered_ms, posting_ms FROM pending_labels;
            DROP TABLE pending_labels;
            ALTER TABLE pending_labels_text RENAME TO pending_labels;
            CREATE INDEX IF NOT EXISTS pending_labels_due ON pending_labels (posted_ms, due_ms)
            """
        )


def _ground_truth_ledger(db: Database) -> None:
    """Issue 11: the ground-truth job's ledger (one row per labelled prediction), watermark and files read."""
    db.script(
        """
        CREATE TABLE IF NOT EXISTS ground_truth_ledger (model TEXT NOT NULL, uuid TEXT NOT NULL,
            deployment_crn TEXT NOT NULL, start_ms BIGINT NOT NULL, label_key TEXT NOT NULL, label TEXT NOT NULL,
            source_row TEXT, state TEXT NOT NULL, run TEXT NOT NULL, intent_ms BIGINT NOT NULL, done_ms BIGINT,
            PRIMARY KEY (model, uuid));
        CREATE INDEX IF NOT EXISTS ground_truth_ledger_state ON ground_truth_ledger (model, state);
        CREATE TABLE IF NOT EXISTS ground_truth_watermark (model TEXT PRIMARY KEY, event_ms BIGINT NOT NULL,
            updated_ms BIGINT NOT NULL);
        CREATE TABLE IF NOT EXISTS ground_truth_files (model TEXT NOT NULL, path TEXT NOT NULL, size BIGINT NOT NULL,
            mtime_ns BIGINT NOT NULL, done_ms BIGINT NOT NULL, PRIMARY KEY (model, path))
        """
    )


#: Counts of schema version 8's window columns: a regressor's labelled rows with target 0, which MAPE
#: leaves out (issue 19).
WINDOW_COUNT_COLUMNS = ("zero_targets",)


def _window_counts(db: Database) -> None:
    for column in WINDOW_COUNT_COLUMNS:
        add_column(db, "windows", column, "INTEGER")


def _ground_truth_that_stays_true(db: Database) -> None:
    """Issue 20: posting claims by run; ledger rows by key and event time; quarantined files; SQL rows seen.

    ``pending_labels.posting_run``: the run whose claim a post is (claimed atomically; a live run's
    claims are never in doubt). ``ground_truth_ledger.source_key`` and ``event_ms``: a re-sent row
    (same key and time) is a duplicate. ``ground_truth_files.quarantined`` and ``needs``: a file that
    cannot be read, why, and the columns it was read for. ``ground_truth_rows``: the SQL rows read
    within the lateness allowance, so that re-reading them counts them once.
    """
    add_column(db, "pending_labels", "posting_run", "TEXT")
    add_column(db, "ground_truth_ledger", "source_key", "TEXT")
    add_column(db, "ground_truth_ledger", "event_ms", "BIGINT")
    add_column(db, "ground_truth_files", "quarantined", "TEXT")
    add_column(db, "ground_truth_files", "needs", "TEXT")
    db.script(
        """
        CREATE INDEX IF NOT EXISTS ground_truth_ledger_key ON ground_truth_ledger (model, source_key, event_ms);
        CREATE TABLE IF NOT EXISTS ground_truth_rows (model TEXT NOT NULL, digest TEXT NOT NULL,
            event_ms BIGINT NOT NULL, seen_ms BIGINT NOT NULL, PRIMARY KEY (model, digest));
        CREATE INDEX IF NOT EXISTS ground_truth_rows_time ON ground_truth_rows (model, event_ms)
        """
    )


#: JSON columns of schema version 10's windows (issue 24): performance estimated without labels, the
#: slices, the domain classifier's joint drift, data quality.
WINDOW_ESTIMATE_COLUMNS = ("estimated", "slices", "joint_drift", "quality")


def _window_estimates(db: Database) -> None:
    for column in WINDOW_ESTIMATE_COLUMNS:
        add_column(db, "windows", column, "TEXT")


#: Every schema change after the baseline, in order. Append only; never edit a released step.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        2,
        "store identity and settings, window-results leases, the aggregates ledger, decisions by sequence",
        _identity_leases_ledger,
    ),
    Migration(3, "window columns for every task's metrics and their confidence bounds", _task_metrics),
    Migration(4, "label intents (written before a request), answer and post times of queued labels", _label_intents),
    Migration(5, "job runs and their VERDICT, for the dashboard", _job_runs),
    Migration(6, "data set replay watermarks; pending labels of any JSON type", _replay_and_any_label),
    Migration(7, "the ground-truth ledger, its watermark and the files it read", _ground_truth_ledger),
    Migration(8, "window counts: a regressor's rows with target 0, left out of MAPE", _window_counts),
    Migration(
        9,
        "posting claims by run, ledger rows by key and event time, quarantined files, SQL rows re-read",
        _ground_truth_that_stays_true,
    ),
    Migration(10, "window estimates, slices, joint drift and data quality (issue 24)", _window_estimates),
)
LATEST = MIGRATIONS[-1].version if MIGRATIONS else BASELINE_VERSION
#: Every table of a store at ``LATEST`` (a rebuild drops these and no other table of a shared database).
STORE_TABLES = (
    "aggregates_sent",
    "decisions",
    "deployments",
    "ground_truth_files",
    "ground_truth_ledger",
    "ground_truth_rows",
    "ground_truth_watermark",
    "job_runs",
    "label_intents",
    "leases",
    "pending_labels",
    "replay",
    "scenario",
    "schema_version",
    "store_identity",
    "store_settings",
    "watermarks",
    "windows",
)


def stored_version(db: Database) -> int | None:
    """The store's schema version, or None when it has no schema at all."""
    if not db.table_exists("schema_version"):
        return None
    row = db.query_one("SELECT MAX(version) FROM schema_version")
    return None if row is None or row[0] is None else int(row[0])


def _refuse_newer(db: Database, found: int) -> None:
    if found > LATEST:
        raise StoreError(
            f"state store {db.where} has schema version {found}, newer than this cml-monitor understands ({LATEST})",
            f"upgrade cml-monitor to a release that knows schema version {found} (or restore a backup made "
            "by this release); nothing was changed",
        )


def migrate(db: Database, baseline: str) -> int:
    """Bring the store to ``LATEST``: create the baseline if absent, then apply newer migrations.

    Args:
        db: the store's database.
        baseline: the version-1 DDL (``;``-separated, ``IF NOT EXISTS`` throughout).

    Returns:
        The version the store is at now.

    Raises:
        StoreError: the store was written by a newer schema version.
    """
    found = stored_version(db)
    if found is not None:
        _refuse_newer(db, found)
        if found == LATEST:
            return found
    with db.transaction() as tx:
        if tx.dialect == "postgresql":
            tx.query_one("SELECT pg_advisory_xact_lock(?)", (_PG_SCHEMA_LOCK,))
        tx.script(baseline)
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?) ON CONFLICT (version) DO NOTHING", (BASELINE_VERSION,)
        )
        found = int(tx.query_aggregate("SELECT MAX(version) FROM schema_version")[0])
        _refuse_newer(tx, found)
        for step in MIGRATIONS:
            if step.version > found:
                step.apply(tx)
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (step.version,))
    return max(found, LATEST)
