"""``cml-monitor state check | backup | restore``: look after the pipeline's state store by hand."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from cmlbase.clock import iso_ms
from monitoring.config.pipeline import PipelineConfig
from monitoring.core.db import Database, redact_url, sqlite_url
from monitoring.core.durations import format_duration, to_ms
from monitoring.core.errors import EXIT_OK, EXIT_STORE, BusyError, ConfigChangedError, MonitoringError, StoreError
from monitoring.state.aggregates import HELD, SENDING, SENT, AggregateLedger
from monitoring.state.backup import copy_rows, default_backup_path, file_problems, move_aside, stamp, write_backup
from monitoring.state.health import (
    IDENTITY_VERSION,
    METRICS_STORE,
    WINDOWS_LENGTH,
    StoreOpening,
    expected_settings,
    store_database,
)
from monitoring.state.identity import history_counts, models_in_history, read_identity, settings, write_identity
from monitoring.state.label_queue import LabelQueue
from monitoring.state.leases import Leases
from monitoring.state.marker import HistoryMarker, marker_path, write_marker
from monitoring.state.migrations import LATEST, stored_version
from monitoring.state.store import StateStore
from monitoring.workflows.context import history_on_platform
from monitoring.workflows.recovery.command import Recovery, say
from monitoring.workflows.recovery.record_scan import catch_up


def _refuse(exc: MonitoringError) -> int:
    say("problem", str(exc).splitlines()[0] if not hasattr(exc, "problems") else "; ".join(exc.problems))
    say("do", exc.action or "see docs/runbook.md")
    return exc.exit_code


def _now_ms() -> int:
    return int(time.time() * 1000)


def _setting_text(key: str, value: str) -> str:
    if key == WINDOWS_LENGTH:
        return f"windows.length {format_duration(timedelta(milliseconds=int(value)))}"
    return f"metrics store {value}" if key == METRICS_STORE else f"{key} {value}"


def check(rec: Recovery) -> int:
    """Print what the state store holds and everything wrong with it; writes nothing.

    Returns:
        0 when healthy (or not created yet with no history anywhere), else the exit code a job
        would end with (7 damaged, foreign or missing; 2 a config key changed after history).
    """
    cfg, root, platform = rec.cfg, rec.project_root, rec.platform
    try:
        opening = StoreOpening(cfg, root)
    except MonitoringError as exc:
        say("state store", redact_url(cfg.state.url))
        return _refuse(exc)
    say("state store", f"{opening.db.where} ({opening.db.dialect})")
    if not opening.present:
        evidence = history_on_platform(platform, cfg)
        if evidence:
            return _refuse(StoreError(f"no state store, but {evidence}"))
        say("result", "no state store yet and no history elsewhere: the first job run creates it")
        return EXIT_OK
    problems = opening.findings(platform.api.project_id)
    _describe(cfg, root, store_database(cfg, root))
    if problems:
        codes = [_refuse(p) for p in problems]
        return EXIT_STORE if EXIT_STORE in codes else codes[0]
    say("result", "healthy")
    return EXIT_OK


def _describe(cfg: PipelineConfig, root: Path, db: Database) -> None:
    try:
        version = stored_version(db) or 0
        say("integrity", "checked (PRAGMA integrity_check)" if db.dialect == "sqlite" else "kept by PostgreSQL")
        say("schema", f"version {version} (this release writes {LATEST})")
        if version < IDENTITY_VERSION:
            say("identity", "none yet (written by the next job run)")
        else:
            ident = read_identity(db)
            if ident:
                say(
                    "identity",
                    f"store {ident.store_id}, model {ident.model!r}, project {ident.project_id}, "
                    f"created {iso_ms(ident.created_ms)} by {ident.created_by}",
                )
            stored = settings(db)
            say("settings", "; ".join(_setting_text(k, v) for k, v in sorted(stored.items())) or "none recorded")
            rows = AggregateLedger(db).rows()
            unfinished = sum(1 for r in rows if r.state == SENDING)
            held = sum(1 for r in rows if r.state == HELD)
            waiting = f", {held} held for their queued labels" if held else ""
            say("aggregates", f"{sum(1 for r in rows if r.state == SENT)} sent, {unfinished} unfinished{waiting}")
            held = [r for r in Leases(db).all() if r.expires_ms > _now_ms()]
            say(
                "leases", ", ".join(f"{r.name} held by {r.holder} until {iso_ms(r.expires_ms)}" for r in held) or "none"
            )
            if db.table_exists("label_intents"):  # schema version 4 on
                queue = LabelQueue(db, Leases(db))
                intents, in_doubt = queue.intents(), queue.in_doubt(1_000_000)
                say(
                    "labels",
                    f"{len(intents)} intents not resolved yet (runs: {len({i.run_id for i in intents})}), "
                    f"{len(in_doubt)} posts in doubt; the next traffic run resolves both",
                )
        counts = history_counts(db)
        waiting = db.query_one("SELECT COUNT(*) FROM pending_labels WHERE posted_ms IS NULL")[0]
        say(
            "history",
            f"{counts['deployments']} deployments, {counts['windows']} windows, {counts['decisions']} decisions, "
            f"{counts['pending_labels']} labels queued ({waiting} not posted yet)",
        )
        say("marker", str(marker_path(root, cfg.model.name).relative_to(root)))
    finally:
        db.close()


def backup(cfg: PipelineConfig, root: Path, out: str | None) -> int:
    """Write a backup file of the state store (SQLite online backup, or a logical copy of PostgreSQL)."""
    opening = StoreOpening(cfg, root, writes=False)  # a read-only store can be backed up
    if not opening.present:
        raise StoreError(f"no state store at {opening.db.where} to back up", "nothing to do; no file was written")
    with StateStore(cfg.state.url, root, busy_timeout_ms=to_ms(cfg.state.busy_timeout)) as store:
        path = write_backup(store.db, Path(out) if out else default_backup_path(store.db, root, _now_ms()))
    say("backup", f"{path} ({path.stat().st_size} bytes, integrity ok)")
    say("restore", f"cml-monitor state restore {path}")
    return EXIT_OK


def verify_backup(file: Path, cfg: PipelineConfig, project_id: str | None, name: Path | None = None) -> None:
    """Refuse a backup that is damaged, not a state store, newer, or another model's or project's.

    Args:
        file: the backup (a copy of it: checking opens it).
        name: the path to name in messages (default ``file``).

    Raises:
        StoreError: naming the file and what is wrong with it.
    """
    name = name or file
    keep = "nothing was changed; choose another backup"
    problems = file_problems(file)
    if problems:
        raise StoreError(f"backup {name} is damaged: {'; '.join(problems[:3])}", keep)
    db = Database(sqlite_url(file), what="backup file")
    try:
        version = stored_version(db)
        if version is None:
            raise StoreError(f"{name} is not a cml-monitor state store backup (no schema version)", keep)
        if version > LATEST:
            raise StoreError(f"backup {name} has schema version {version}, newer than {LATEST}", keep)
        ident = read_identity(db) if version >= IDENTITY_VERSION else None
        models = {ident.model} if ident else models_in_history(db)
        if models - {cfg.model.name}:
            raise StoreError(
                f"backup {name} belongs to model {', '.join(sorted(models))}, not {cfg.model.name!r}", keep
            )
        if ident and ident.project_id and project_id and ident.project_id != project_id:
            raise StoreError(f"backup {name} belongs to project {ident.project_id}, not {project_id}", keep)
        notes = _setting_notes(cfg, settings(db) if version >= IDENTITY_VERSION else {})
    finally:
        db.close()
    for note in notes:
        say("note", note)


def refuse_if_busy(cfg: PipelineConfig, root: Path, opening: StoreOpening) -> None:
    if not opening.present:
        return
    db = store_database(cfg, root)
    try:
        if (stored_version(db) or 0) < IDENTITY_VERSION:
            return
        held = [r for r in Leases(db).all() if r.expires_ms > _now_ms()]
    finally:
        db.close()
    if held:
        raise BusyError(
            f"run {held[0].holder} is writing window results (lease until {iso_ms(held[0].expires_ms)}); "
            "pause the head job and wait for running jobs before replacing the store"
        )


def restore(rec: Recovery, file: str) -> int:
    """Replace the state store by a backup (checked first); the replaced store is kept beside it."""
    cfg, root, platform = rec.cfg, rec.project_root, rec.platform
    source = Path(file).resolve()
    if not source.is_file():
        raise StoreError(f"no backup file {source}", "nothing was changed; name an existing backup file")
    project_id = platform.api.project_id
    try:
        opening: StoreOpening | None = StoreOpening(cfg, root)
    except (StoreError, ConfigChangedError):  # damaged, missing, or moved: what a restore is for
        opening = None
    if opening is not None:
        refuse_if_busy(cfg, root, opening)
    target = store_database(cfg, root)
    with tempfile.TemporaryDirectory(prefix="cml-monitor-restore-") as tmp:
        staged = Path(tmp) / "staged.db"
        shutil.copyfile(source, staged)  # the backup itself is only read
        if source.with_name(source.name + "-wal").is_file():
            shutil.copyfile(source.with_name(source.name + "-wal"), staged.with_name("staged.db-wal"))
        verify_backup(staged, cfg, project_id, name=source)
        with StateStore(sqlite_url(staged)) as migrated:  # an older backup is brought to this schema
            ident = read_identity(migrated.db) or write_identity(migrated.db, project_id, cfg.model.name, _now_ms())
            if target.dialect == "sqlite":
                aside = _replace_sqlite(target.path, migrated.db)
            else:
                aside = None
                if opening is not None and opening.present:
                    with StateStore(cfg.state.url, root) as current:
                        aside = write_backup(current.db, default_backup_path(current.db, root, _now_ms()))
                with StateStore(cfg.state.url, root) as restored:
                    copy_rows(migrated.db, restored.db)
    marker = HistoryMarker(cfg.model.name, ident.store_id, redact_url(cfg.state.url), project_id, ident.created_ms)
    write_marker(root, marker)
    say("restored", f"{source} into {target.where} (store {ident.store_id}, model {ident.model!r})")
    say("kept", f"the store it replaced: {aside}" if aside else "no store was replaced")
    with StateStore(cfg.state.url, root) as restored:
        caught = catch_up(rec.context(restored), platform.clock.now_ms())
    seeded = (
        f"; {caught.requeued} labels of predictions made since the backup queued from the simulation seed"
        if caught.from_seed
        else ""
    )
    say(
        "caught up",
        f"{caught.aggregates} aggregates found in CML recorded as sent; {caught.in_doubt} due labels not marked "
        f"posted will be checked against their records before any is posted{seeded}",
    )
    if caught.replayed is not None:
        replayed = caught.replayed
        say(
            "replay",
            f"{replayed.found} rows of the replayed data set sent since the backup found in CML: the replay goes "
            f"on from row {replayed.position} (the backup's position: {replayed.was}); {replayed.queued} of their "
            "labels queued from the data set",
        )
    if caught.unqueued:
        say(
            "note",
            f"{caught.unqueued} unlabelled predictions have no label queued (the bootstrap's smoke call, or labels "
            "that come from a ground-truth feed, or requests a replay sent twice)",
        )
    return EXIT_OK


def _replace_sqlite(path: Path, staged: Database) -> Path | None:
    """Move the current store aside, then write the staged copy in its place (SQLite's backup API)."""
    aside = move_aside(path, f"before-restore-{stamp(_now_ms())}")
    part = path.with_name(path.name + ".restoring")
    part.unlink(missing_ok=True)
    dst = sqlite3.connect(part)
    try:
        staged.conn.backup(dst)
    finally:
        dst.close()
    shutil.move(part, path)
    return aside


def _setting_notes(cfg: PipelineConfig, stored: dict[str, str]) -> list[str]:
    """What a backup's settings say that the config does not (jobs refuse until they agree)."""
    return [
        f"the backup was written with {_setting_text(key, stored[key])}, the config has "
        f"{_setting_text(key, value)}: jobs will refuse until they agree (`cml-monitor state check`)"
        for key, value in expected_settings(cfg).items()
        if stored.get(key) not in (None, value)
    ]
