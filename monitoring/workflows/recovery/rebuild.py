"""``cml-monitor state rebuild``: a new state store from what outlives the old one.

Rebuilt: deployments (the platform's deployments of the model that served predictions, the
live one last), windows and watermarks (recomputed from the metrics store by compute_accuracy's
own code, at the configured ``windows.length``), the aggregates ledger (the aggregate records
found in the metrics store count as sent), the scenario epoch (the first prediction's cycle) and
the queue of labels not posted yet (drawn again from the simulation seed).

Not rebuilt: decisions (ids, claims, outcomes; so the cooldown and the daily redeploy cap count
afresh), the reasons recorded with deployments, and labels of a production ground-truth feed
(its job re-reads its source). A prediction whose answer was lost may get a label it would not
have had; a retried row's earlier records never do.
"""

from __future__ import annotations

import time
from pathlib import Path

from monitoring.config.pipeline import PipelineConfig
from monitoring.core.durations import to_ms
from monitoring.core.errors import EXIT_OK, ConfigChangedError, StoreError
from monitoring.state.backup import default_backup_path, move_aside, stamp, store_tables, write_backup
from monitoring.state.health import StoreOpening, store_database
from monitoring.state.marker import remove_marker
from monitoring.state.migrations import STORE_TABLES
from monitoring.state.store import StateStore
from monitoring.workflows.context import Context, version_of
from monitoring.workflows.recovery.admin import refuse_if_busy
from monitoring.workflows.recovery.command import Recovery, say
from monitoring.workflows.recovery.record_scan import Scan, deployments_of, scan_all
from monitoring.workflows.recovery.seed_labels import Prediction, seeded_labels
from monitoring.workflows.spans import spans_to_read, windows_for_span


def _set_aside(cfg: PipelineConfig, root: Path, now_ms: int) -> str | None:
    """Move the current store out of the way (SQLite: renamed; PostgreSQL: backed up, then emptied)."""
    db = store_database(cfg, root)
    try:
        if db.dialect == "sqlite":
            aside = move_aside(db.path, f"before-rebuild-{stamp(now_ms)}")
            return None if aside is None else str(aside)
        if not db.table_exists("schema_version"):
            return None
        with StateStore(cfg.state.url, root) as current:
            kept = write_backup(current.db, default_backup_path(current.db, root, now_ms))
        with db.transaction() as tx:
            for table in store_tables(tx):
                if table in STORE_TABLES:  # another application's tables in the same schema stay
                    tx.execute(f"DROP TABLE {table}")
        return str(kept)
    finally:
        db.close()


def rebuild(rec: Recovery) -> int:
    """Set the old store aside and build a new one from the platform, the metrics store and the seed."""
    cfg, root, platform = rec.cfg, rec.project_root, rec.platform
    try:
        opening = StoreOpening(cfg, root)
        refuse_if_busy(cfg, root, opening)
    except (StoreError, ConfigChangedError):
        pass  # damaged, missing or moved: what a rebuild is for
    now = platform.clock.now_ms()
    aside = _set_aside(cfg, root, int(time.time() * 1000))
    remove_marker(root, cfg.model.name)
    store = StoreOpening(cfg, root).open(platform.api.project_id)
    ctx = rec.context(store)
    try:
        say("kept", f"the old store: {aside}" if aside else "there was no old store")
        _fill(ctx, now)
    finally:
        store.close()
    say(
        "not rebuilt",
        "decisions (the cooldown and the daily cap count afresh), deployment reasons, labels of a "
        "ground-truth feed (its job re-reads its source)",
    )
    return EXIT_OK


def _fill(ctx: Context, now: int) -> None:
    cfg, api, store = ctx.cfg, ctx.platform.api, ctx.store
    model = api.find_model(cfg.model.name)
    if model is None:
        say("rebuilt", f"nothing: model {cfg.model.name!r} does not exist on the platform (a fresh start)")
        return
    live = api.live_deployment(model)
    candidates = deployments_of(api, model)
    scans = scan_all(ctx, candidates, now)
    served = [d for d in candidates if scans[d.id].records and (live is None or d.id != live.id)]
    served += [live] if live is not None else []
    for dep in served:
        first = scans[dep.id].first_ms
        since = min(x for x in (dep.created_ms, first, now) if x is not None)
        store.record_deployment(model.name, dep.crn, model.crn, dep.build_id, version_of(dep), since, "rebuilt")
    computed = 0
    for span in spans_to_read(ctx, store.deployments(model.name), now):
        results = windows_for_span(ctx, span, now)
        store.upsert_windows(results)
        store.set_watermark(span.deployment.deployment_crn, now)
        computed += len(results)
    sent = store.aggregates.record_sent(
        [(d.crn, s, e) for d in served for s, e in scans[d.id].aggregates], "rebuild", now
    )
    firsts = [scans[d.id].first_ms for d in served if scans[d.id].first_ms is not None]
    cycle_ms = max(1, to_ms(cfg.scenario.cycle))
    epoch = store.set_scenario_epoch_if_absent(model.name, min(firsts) - min(firsts) % cycle_ms) if firsts else None
    records = [p for d in served for p in (*scans[d.id].unlabelled, *_labelled(scans[d.id]))]
    labels = seeded_labels(ctx, records, epoch)
    labels.queue(ctx)
    say(
        "rebuilt",
        f"{len(served)} deployments, {computed} windows (watermarks at now), {sent} aggregates already in CML, "
        f"{len(labels.rows)} labels queued from the simulation seed",
    )
    if labels.unmatched or labels.retried:
        say(
            "note",
            f"{labels.unmatched} unlabelled predictions match no seeded row (not simulated, or the scenario "
            f"changed): they get no label; {labels.retried} extra records of retried rows get none either",
        )


def _labelled(found: Scan) -> list[Prediction]:
    return [p for preds in found.labelled.values() for p in preds]
