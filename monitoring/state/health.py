"""Store health at job start: damage, schema version, whose store it is, settings, and a store that vanished.

Every job opens its state store through ``StoreOpening``, in two steps:

1. before the platform is reached (``StoreOpening(cfg, root)``): a SQLite file must start with
   SQLite's header and pass ``PRAGMA quick_check``; a store that is missing (no file, an empty
   file, no schema) while the project's history marker says it existed is refused; so is a store
   that cannot take writes (a read-only file, directory, mount or server, a role without write
   privileges), unless the caller only reads;
2. after (``opening.open(project_id, history_elsewhere)``): a missing store is created only when
   nothing says history exists (no marker, and the platform shows no deployment made by
   cml-monitor); the store is migrated; its identity must name this project and model; the
   settings its history depends on (``windows.length``, the metrics store) must not have changed.

A refusal changes nothing: no file is created, no row written.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from cmlbase.clock import iso_ms
from monitoring.config.pipeline import PipelineConfig
from monitoring.core.db import Database, redact_url
from monitoring.core.durations import format_duration, to_ms
from monitoring.core.errors import ConfigChangedError, NoSpaceError, StoreError
from monitoring.core.logs import KV
from monitoring.core.writable import refuses_writes
from monitoring.state.identity import (
    StoreIdentity,
    has_history,
    models_in_history,
    put_setting,
    read_identity,
    rebind_identity,
    settings,
    write_identity,
)
from monitoring.state.marker import HistoryMarker, read_marker, write_marker
from monitoring.state.migrations import LATEST, stored_version
from monitoring.state.store import StateStore

log = logging.getLogger(__name__)

WHAT = "state store"
#: Problems of ``quick_check`` quoted in the refusal (the rest are counted).
QUOTED_PROBLEMS = 3
#: The first schema version with the identity and settings tables.
IDENTITY_VERSION = 2
WINDOWS_LENGTH = "windows.length"
METRICS_STORE = "metrics.store"
RESTORE_OR_REBUILD = (
    "nothing was created or changed; restore the latest backup (`cml-monitor state restore FILE`), "
    "or rebuild what can be rebuilt (`cml-monitor state rebuild`)"
)


def store_database(cfg: PipelineConfig, project_root: str | os.PathLike[str]) -> Database:
    """The state store's database as a job reaches it (storage failures translated); not connected yet."""
    return Database(cfg.state.url, Path(project_root), what=WHAT, busy_timeout_ms=to_ms(cfg.state.busy_timeout))


def expected_settings(cfg: PipelineConfig) -> dict[str, str]:
    """The config values stored history depends on: the window grid and the metrics store its labels live in."""
    if cfg.platform.kind == "cml":
        metrics = "cml"
    else:
        local = cfg.platform.local
        metrics = "local " + redact_url(local.metrics_store_url)
    return {WINDOWS_LENGTH: str(cfg.windows.length_ms), METRICS_STORE: metrics}


def integrity_problems(db: Database, full: bool = False) -> list[str]:
    """SQLite's own check of every page (``quick_check``; ``integrity_check`` with ``full``); [] when sound.

    PostgreSQL guards its own pages: there is nothing to check from a client, so [] there.
    """
    if db.dialect != "sqlite":
        return []
    rows = db.query(f"PRAGMA {'integrity_check' if full else 'quick_check'}")
    return [str(r[0]) for r in rows if str(r[0]) != "ok"]


def sqlite_header_problem(path: Path) -> str | None:
    """Why a non-empty file cannot be a SQLite database (its header), or None.

    Read through SQLite, never through a file handle of our own: closing any other handle on the
    file drops the POSIX locks this process's SQLite connections hold on it, which lets another
    process checkpoint and truncate the WAL under them (SQLite's documented locking caveat).
    """
    conn = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            return "garbage in its header (the file does not start as a SQLite database)"
        return None  # other damage: quick_check names it
    finally:
        conn.close()
    return None


def damaged(db: Database, problem: str) -> StoreError:
    return StoreError(f"{WHAT} {db.where} is damaged: {problem}")


class StoreOpening:
    """Opening the state store for one job run, checked (see the module docstring).

    Args:
        cfg: the run's config.
        project_root: the project directory (relative SQLite paths, the history marker).
        wall: seconds since the epoch, for the identity's and settings' times (injectable).
        writes: the caller writes to the store (every job): one that cannot take writes is refused.

    Raises:
        StoreError: the store is damaged, not a cml-monitor store, missing while the marker says
            it existed, or (with ``writes``) read-only.
        ConfigChangedError: ``state.url`` points somewhere new while the marker names the old store.
    """

    def __init__(
        self,
        cfg: PipelineConfig,
        project_root: str | os.PathLike[str],
        *,
        wall: Callable[[], float] = time.time,
        writes: bool = True,
    ):
        self.cfg = cfg
        self.root = Path(project_root).resolve()
        self.wall = wall
        self.model = cfg.model.name
        self.url = redact_url(cfg.state.url)
        self.marker = read_marker(self.root, self.model)
        self.db = store_database(cfg, self.root)
        try:
            self.present = self._present()
            if self.present:
                problems = integrity_problems(self.db)
                if problems:
                    more = f" (and {len(problems) - QUOTED_PROBLEMS} more)" if len(problems) > QUOTED_PROBLEMS else ""
                    raise damaged(self.db, "; ".join(problems[:QUOTED_PROBLEMS]) + more)
            elif self.marker is not None:
                raise self._vanished(self.marker)
            refusal = refuses_writes(self.db) if writes else None
            if refusal is not None:
                raise refusal
        finally:
            self.db.close()

    def _present(self) -> bool:
        db = self.db
        if db.dialect == "sqlite":
            path = db.path
            assert path is not None  # a SQLite store has a file
            if not path.exists() or path.stat().st_size == 0:
                return False
            problem = sqlite_header_problem(path)
            if problem:
                raise damaged(db, problem)
        if db.table_exists("schema_version"):
            return True
        foreign = [t for t in _tables(db) if not t.startswith("sqlite_")]
        if foreign:
            raise StoreError(
                f"{db.where} is not a cml-monitor state store (it holds tables {', '.join(sorted(foreign)[:5])})",
                "point state.url at the project's own state store; nothing was changed",
            )
        return False

    def _vanished(self, marker: HistoryMarker) -> Exception:
        was = f"store {marker.store_id}" + (f", created {iso_ms(marker.created_ms)}" if marker.created_ms else "")
        if marker.url not in (self.url, "?"):
            return ConfigChangedError(
                f"state.url changed from {marker.url} to {self.url} after history exists ({was}, model "
                f"{self.model!r}); there is no state store at the new URL",
                f"set state.url back to {marker.url}; to move the store, back it up under the old URL "
                "(`cml-monitor state backup --out FILE`), then restore it under the new one "
                "(`cml-monitor state restore FILE`)",
            )
        return StoreError(
            f"{WHAT} {self.db.where} is missing or empty, but model {self.model!r} had one here ({was}): "
            "it was deleted, emptied or truncated; starting a new one would lose queued labels and send "
            "window results twice",
            RESTORE_OR_REBUILD,
        )

    def open(
        self, project_id: str | None = None, history_elsewhere: Callable[[], str | None] | None = None
    ) -> StateStore:
        """The checked, migrated store; created only when nothing says history exists.

        Args:
            project_id: the platform's project (CML's ``CDSW_PROJECT_ID``); None skips that check.
            history_elsewhere: called only when there is no store: returns what shows that
                history exists (a deployment cml-monitor made), or None.

        Raises:
            StoreError: missing while history exists, or foreign (another project).
            ConfigChangedError: the model name or a setting changed after history exists.
            NoSpaceError, LockedError: creating or migrating it failed.
        """
        if not self.present and history_elsewhere is not None:
            evidence = history_elsewhere()
            if evidence:
                raise StoreError(
                    f"no {WHAT} at {self.db.where}, but {evidence}: the store was lost (or this project's "
                    "history lives in another store)",
                    RESTORE_OR_REBUILD,
                )
        store = StateStore(self.cfg.state.url, self.root, busy_timeout_ms=to_ms(self.cfg.state.busy_timeout))
        try:
            identity = self._identity(store, project_id)
            self._settings(store)
            self._mark(identity)
        except BaseException:
            store.close()
            raise
        return store

    # -- checks after opening ----------------------------------------------------------------
    def _now(self) -> int:
        return int(self.wall() * 1000)

    def _identity(self, store: StateStore, project_id: str | None) -> StoreIdentity:
        db = store.db
        identity = read_identity(db)
        if identity is None:
            others = models_in_history(db) - {self.model} if self.present else set()
            if others:
                raise self._renamed(db, ", ".join(repr(m) for m in sorted(others)))
            identity = write_identity(db, project_id, self.model, self._now())
            log.info(
                "state store identity written %s",
                KV(store=identity.store_id, model=identity.model, project=identity.project_id, adopted=self.present),
            )
        if project_id and identity.project_id and identity.project_id != project_id:
            if has_history(db):
                raise StoreError(
                    f"{WHAT} {db.where} belongs to project {identity.project_id} (model {identity.model!r}), "
                    f"not to this project {project_id}",
                    "nothing was changed; point state.url at this project's own store, or restore this "
                    "project's backup (`cml-monitor state restore FILE`); after a reset of the workspace, "
                    "`cml-monitor state rebuild` starts a store for the new project",
                )
            identity = rebind_identity(db, project_id, identity.model)
        elif project_id and not identity.project_id:
            identity = rebind_identity(db, project_id, identity.model)
        if identity.model != self.model:
            if has_history(db):
                raise self._renamed(db, repr(identity.model))
            identity = rebind_identity(db, identity.project_id, self.model)
        return identity

    def _renamed(self, db: Database, before: str) -> ConfigChangedError:
        return ConfigChangedError(
            f"model.name changed from {before} to {self.model!r} after history exists in {WHAT} {db.where}",
            f"set model.name back to {before}; a different model needs its own state store (a new state.url), "
            "its own jobs and its own history",
        )

    def _settings(self, store: StateStore) -> None:
        stored = settings(store.db)
        for key, value in expected_settings(self.cfg).items():
            before = stored.get(key)
            if before == value:
                continue
            if before is not None and has_history(store.db):
                raise setting_changed(key, before, value)
            put_setting(store.db, key, value, self._now())

    def findings(self, project_id: str | None = None) -> list[StoreError | ConfigChangedError]:
        """Everything ``open`` would refuse, and any damage ``integrity_check`` finds, without writing anything.

        Args:
            project_id: the platform's project; None skips that check.
        """
        db = store_database(self.cfg, self.root)
        try:
            found: list[StoreError | ConfigChangedError] = []
            problems = integrity_problems(db, full=True)
            if problems:
                found.append(damaged(db, "; ".join(problems[:QUOTED_PROBLEMS])))
            version = stored_version(db) or 0
            if version > LATEST:
                found.append(StoreError(f"{WHAT} {db.where} has schema version {version}, newer than {LATEST}"))
                return found
            history = has_history(db)
            identity = read_identity(db) if version >= IDENTITY_VERSION else None
            if identity is None and history and models_in_history(db) - {self.model}:
                found.append(self._renamed(db, ", ".join(repr(m) for m in sorted(models_in_history(db)))))
            if identity is not None and history:
                if project_id and identity.project_id and identity.project_id != project_id:
                    found.append(
                        StoreError(f"{WHAT} {db.where} belongs to project {identity.project_id}, not {project_id}")
                    )
                if identity.model != self.model:
                    found.append(self._renamed(db, repr(identity.model)))
            stored = settings(db) if version >= IDENTITY_VERSION else {}
            for key, value in expected_settings(self.cfg).items():
                if history and stored.get(key) not in (None, value):
                    found.append(setting_changed(key, stored[key], value))
            return found
        finally:
            db.close()

    def _mark(self, identity: StoreIdentity) -> None:
        marker = HistoryMarker(self.model, identity.store_id, self.url, identity.project_id, identity.created_ms)
        if self.marker == marker:
            return
        try:
            write_marker(self.root, marker)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise NoSpaceError(
                    f"cannot write the history marker in {self.root}: no space left", str(self.root)
                ) from exc
            raise StoreError(
                f"cannot write the history marker in {self.root}: {exc}",
                f"make {self.root / '.cml-monitor'} writable, then re-run",
            ) from exc


def open_existing(cfg: PipelineConfig, project_root: str | os.PathLike[str]) -> StateStore:
    """The store for a command that only reads it (``decisions``, ``report``): checked for damage, never created.

    Raises:
        StoreError: there is no store yet, or it is damaged or missing while history exists.
    """
    opening = StoreOpening(cfg, project_root, writes=False)
    if not opening.present:
        raise StoreError(
            f"no {WHAT} at {opening.db.where} yet: no job has run in this project with this config",
            "run `cml-monitor bootstrap` (or the jobs) first; nothing was created",
        )
    return StateStore(cfg.state.url, opening.root, busy_timeout_ms=to_ms(cfg.state.busy_timeout))


def setting_changed(key: str, before: str, now: str) -> ConfigChangedError:
    """The refusal for a setting that changed after history exists, naming the config key and what to do."""
    if key == WINDOWS_LENGTH:
        old, new = (format_duration_ms(int(v)) for v in (before, now))
        return ConfigChangedError(
            f"windows.length changed from {old} to {new} after history exists: stored windows sit on the {old} "
            "grid and new ones would overlap them",
            f"set windows.length back to {old}; or run `cml-monitor state rebuild` to recompute every window at "
            f"{new} from the metrics store (window results already sent to CML at {old} stay there)",
        )
    config_key = "platform.kind" if before.split(" ")[0] != now.split(" ")[0] else "platform.local.metrics_url"
    return ConfigChangedError(
        f"{config_key} changed after history exists: the metrics store was {before}, now {now}; queued labels "
        "and stored windows belong to predictions in the old one",
        f"set {config_key} back (metrics store {before}); if the old metrics store is gone for good, run "
        "`cml-monitor state rebuild` to rebuild windows and queued labels from the new one",
    )


def format_duration_ms(ms: int) -> str:
    return format_duration(timedelta(milliseconds=ms))


def _tables(db: Database) -> list[str]:
    if db.dialect == "sqlite":
        return [str(r[0]) for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")]
    rows = db.query("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()")
    return [str(r[0]) for r in rows]
