"""After a restore, the rows a replay sent since the backup, found in the metrics store: never sent again.

A restored store holds the replay's position of the backup; the rows sent since are in the
metrics store. Each prediction record since the backup's last replay move is matched to a row
of the plan from that position on, by its tracked features (numbers, categories, missing
values); the replay goes on after the last row found, and the label of each matched record
that has none is queued from the data set, due when the row's label time comes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitoring.cmlclient.refs import DeploymentRef
from monitoring.core.durations import to_ms
from monitoring.domain.data.replay import read_plan
from monitoring.domain.data.requests import requests_of, values_key
from monitoring.domain.records.keys import START_KEY, UUID_KEY
from monitoring.workflows.context import Context


@dataclass
class Replayed:
    """What a restore took back of a replay.

    Attributes:
        found: prediction records of rows sent since the backup.
        queued: their labels queued again (those not on their records yet).
        was / position: the replay's position in the backup, and where it goes on from.
    """

    found: int = 0
    queued: int = 0
    was: int = 0
    position: int = 0


@dataclass(frozen=True)
class _Record:
    crn: str
    uuid: str
    start_ms: int
    labelled: bool


def _records_since(ctx: Context, deployments: Sequence[DeploymentRef], since_ms: int, now: int) -> dict[Any, list]:
    """Prediction records from ``since_ms`` on, by their features' key, oldest first."""
    names = tuple(ctx.cfg.model.feature_names)
    windows = ctx.cfg.windows
    found: dict[Any, list[_Record]] = defaultdict(list)
    for dep in deployments:
        for _, _, records in ctx.platform.metrics.read_chunks(dep.crn, since_ms, now + 1, to_ms(windows.chunk)):
            for rec in records:
                metrics = rec.get("metrics") if isinstance(rec, dict) else None
                if not isinstance(metrics, dict) or not rec.get(UUID_KEY):
                    continue
                feats = metrics.get(windows.features_key)
                key = values_key(feats, names) if isinstance(feats, dict) else None
                if key is not None:
                    start = int(rec.get(START_KEY) or 0)
                    found[key].append(_Record(dep.crn, str(rec[UUID_KEY]), start, windows.label_key in metrics))
    for recs in found.values():
        recs.sort(key=lambda r: r.start_ms)
    return found


def catch_up_replay(ctx: Context, deployments: Sequence[DeploymentRef], now: int) -> Replayed | None:
    """Move a restored replay past the rows sent since the backup and queue their labels.

    Rows of one features key pair with its records in order; when a row has more records than
    rows (a retried request), the last ones are the answered ones.

    Returns:
        What was taken back; None when no replay is recorded, or its data set changed (the next
        traffic run refuses it and says so).
    """
    store, spec = ctx.store, ctx.cfg.model
    progress = store.replay_progress(spec.name)
    if progress is None:
        return None
    plan = read_plan(ctx.cfg.data.replay, spec, ctx.project_root)
    if plan.digest != progress.digest:
        return None
    first, end = progress.position, max(progress.position, plan.due(progress.epoch_ms, now))
    names = tuple(spec.feature_names)
    rows: dict[Any, list[int]] = defaultdict(list)
    for i, request in enumerate(requests_of(plan.rows.iloc[first:end], spec), start=first):
        key = values_key(request, names)
        if key is not None:
            rows[key].append(i)
    since = progress.updated_ms if progress.updated_ms is not None else progress.epoch_ms
    records = _records_since(ctx, deployments, since, now) if rows else {}
    labels = plan.labels(spec)
    due = plan.pipeline_time(progress.epoch_ms, plan.label_ms)
    caught = Replayed(was=first, position=first)
    queue: list[tuple[str, str, Any, int, int]] = []
    for key, indices in rows.items():
        recs = records.get(key, [])
        pairs = list(zip(indices, recs[-len(indices) :])) if len(recs) >= len(indices) else list(zip(indices, recs))
        for i, rec in pairs:
            caught.found += 1
            caught.position = max(caught.position, i + 1)
            if not rec.labelled:
                queue.append((rec.uuid, rec.crn, labels[i], int(due[i]), rec.start_ms))
    queued = store.label_queue.queued(u for u, *_ in queue)
    fresh = [row for row in queue if row[0] not in queued]
    store.label_queue.add(fresh)
    caught.queued = len(fresh)
    if caught.position != first:
        store.move_replay(spec.name, caught.position, now)
    return caught
