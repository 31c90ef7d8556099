"""One read of each deployment's records in the metrics store: what a rebuild or a restore needs of them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from monitoring.cmlclient.refs import DeploymentRef
from monitoring.core.durations import to_ms
from monitoring.domain.records.keys import END_KEY, START_KEY, UUID_KEY
from monitoring.workflows.context import Context
from monitoring.workflows.recovery.replay_restore import Replayed, catch_up_replay
from monitoring.workflows.recovery.seed_labels import Prediction, feature_key, seeded_labels

#: Cycles on either side of an unlabelled record whose labelled records are kept (retries span one boundary).
NEIGHBOURS = 1


@dataclass
class Scan:
    """One deployment's records, read once: what a rebuild or a restore needs of them."""

    records: int = 0
    first_ms: int | None = None
    aggregates: list[tuple[int, int]] = field(default_factory=list)
    unlabelled: list[Prediction] = field(default_factory=list)
    labelled: dict[int, list[Prediction]] = field(default_factory=lambda: defaultdict(list))


def scan(ctx: Context, dep: DeploymentRef, start_ms: int, now: int) -> Scan:
    """Read a deployment's records from ``start_ms`` to ``now`` chunk by chunk.

    Labelled records are kept only for cycles next to an unlabelled one (memory stays bounded
    by the unlabelled tail, not by the history).
    """
    cfg = ctx.cfg
    windows = cfg.windows
    cycle_ms = max(1, to_ms(cfg.scenario.cycle))
    names = list(cfg.model.feature_names)
    found = Scan()
    open_cycles: set[int] = set()
    for _, hi, records in ctx.platform.metrics.read_chunks(dep.crn, start_ms, now, to_ms(windows.chunk)):
        for rec in records:
            if not isinstance(rec, dict):
                continue
            ts, end = int(rec.get(START_KEY) or 0), int(rec.get(END_KEY) or 0)
            if rec.get(UUID_KEY) == "":
                found.aggregates.append((ts, end))
                continue
            found.records += 1
            found.first_ms = ts if found.first_ms is None else min(found.first_ms, ts)
            metrics = rec.get("metrics") if isinstance(rec.get("metrics"), dict) else {}
            labelled = metrics.get(windows.label_key) is not None
            pred = Prediction(
                dep.crn, str(rec.get(UUID_KEY)), ts, end, feature_key(metrics, windows.features_key, names), labelled
            )
            if labelled:
                found.labelled[ts // cycle_ms].append(pred)
            else:
                found.unlabelled.append(pred)
                open_cycles.add(ts // cycle_ms)
        done = hi // cycle_ms - 2 * NEIGHBOURS - 1
        for cycle in [c for c in found.labelled if c < done]:
            if not any(abs(cycle - u) <= NEIGHBOURS for u in open_cycles):
                del found.labelled[cycle]
    return found


@dataclass
class Caught:
    """What a restore took back from the metrics store (see ``catch_up``); ``from_seed``: labels of the
    synthetic scenario, drawn again from its seed (no ground-truth feed, no replay)."""

    aggregates: int = 0
    in_doubt: int = 0
    requeued: int = 0
    unqueued: int = 0
    from_seed: bool = False
    replayed: Replayed | None = None


def deployments_of(api, model) -> list[DeploymentRef]:
    """Every deployment of every build of ``model`` on the platform, oldest first."""
    return sorted(
        (d for b in api.builds(model) for d in api.deployments(model, b.id)),
        key=lambda d: (d.created_ms is None, d.created_ms or 0),
    )


def scan_all(ctx: Context, deployments: Sequence[DeploymentRef], now: int) -> dict[str, Scan]:
    """``scan`` of each deployment from the window its deployment began in, by deployment id."""
    window = ctx.cfg.windows.length_ms
    return {d.id: scan(ctx, d, (d.created_ms or 0) - (d.created_ms or 0) % window, now) for d in deployments}


def catch_up(ctx: Context, now: int) -> Caught:
    """After a restore, take from the metrics store what happened since the backup.

    Aggregate records found there count as sent (never sent twice); due labels not marked posted
    are put in doubt (checked against their records by the next traffic run, never posted blindly);
    with the synthetic scenario, predictions made since the backup get their labels from the seed
    again (queued once: a retried row labelled through another record gets none); with a replayed
    data set, the rows sent since are found, never sent again, and their labels queued from it
    (``replay_restore``).
    """
    store, api, cfg = ctx.store, ctx.platform.api, ctx.cfg
    model = api.find_model(cfg.model.name)
    if model is None:
        return Caught()
    deployments = deployments_of(api, model)
    scans = scan_all(ctx, deployments, now)
    sent = store.aggregates.record_sent(
        [(d.crn, s, e) for d in deployments for s, e in scans[d.id].aggregates], "restore", now
    )
    caught = Caught(sent, store.label_queue.doubt_due(now))
    caught.from_seed = cfg.ground_truth is None and cfg.data.replay is None
    if cfg.data.replay is not None:
        caught.replayed = catch_up_replay(ctx, deployments, now)
    unlabelled = [p for d in deployments for p in scans[d.id].unlabelled]
    queued = store.label_queue.queued(p.uuid for p in unlabelled)
    missing = [p for p in unlabelled if p.uuid not in queued]
    if not missing or not caught.from_seed:
        caught.unqueued = len(missing)  # a feed labels them (or nothing can)
        return caught
    neighbours = [p for d in deployments for preds in scans[d.id].labelled.values() for p in preds]
    labels = seeded_labels(ctx, [*missing, *neighbours], store.scenario_epoch(model.name))
    labels.queue(ctx)
    caught.requeued, caught.unqueued = len(labels.rows), labels.unmatched
    return caught
