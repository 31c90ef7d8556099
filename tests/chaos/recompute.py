"""The recomputation invariant: every stored window equals the domain's window functions over the raw records.

The raw prediction records are read from the workspace's metrics store itself (SQLite, opened
read-only), not through the pipeline; each window the state store holds is recomputed from the
records of its deployment that start inside it, with ``compute_windows`` on the same grid (the
configured window length, the deployment's training reference, the policies' bounds and the
scenario seed). Counts must be equal, metrics equal within a float tolerance; and every complete
window a run has passed (before the deployment's watermark, while it served) must be stored.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from collections import defaultdict
from pathlib import Path
from typing import Any

from monitoring.config.pipeline import PipelineConfig
from monitoring.core.errors import DataError
from monitoring.domain.metrics.drift import ReferenceStats
from monitoring.domain.records.decode import records_to_columns
from monitoring.domain.training.artifacts import load_artifact
from monitoring.domain.windows.compute import compute_windows
from monitoring.domain.windows.headline import bound_requests
from monitoring.domain.windows.results import LATENCY, METRICS, WindowMetrics, window_start
from monitoring.state.store import DeploymentRow, StateStore

#: Floats from the job's chunked reading and from this one whole reading may differ by rounding only.
REL_TOL = 1e-9
ABS_TOL = 1e-12


def raw_records(metrics_db: Path) -> list[dict[str, Any]]:
    """Every prediction record of the metrics store (aggregates left out), in CML's ``read_metrics`` shape.

    Ordered as the store's own reads order them (start time, then insertion).
    """
    uri = f"file:{metrics_db}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
        rows = db.execute(
            "SELECT deployment_crn, build_crn, model_crn, prediction_uuid, start_ms, end_ms, metrics "
            "FROM model_metrics WHERE prediction_uuid <> '' ORDER BY start_ms, id"
        ).fetchall()
    return [
        {
            "modelDeploymentCrn": crn,
            "modelBuildCrn": build,
            "modelCrn": model,
            "predictionUuid": uuid,
            "startTimeStampMs": int(start),
            "endTimeStampMs": int(end),
            "metrics": json.loads(metrics),
        }
        for crn, build, model, uuid, start, end, metrics in rows
    ]


def _reference(artifacts_dir: Path, dep: DeploymentRow) -> ReferenceStats | None:
    """The deployment's training reference, as compute_accuracy finds it (None: drift is not computed)."""
    try:
        return ReferenceStats.from_dict(
            load_artifact(artifacts_dir / dep.model / str(dep.version)).metadata["reference"]
        )
    except (DataError, KeyError):
        return None


def recompute_window(
    cfg: PipelineConfig, records: list[dict[str, Any]], window: WindowMetrics, reference: ReferenceStats | None
) -> WindowMetrics | None:
    """``window`` computed afresh from ``records`` (those of its deployment starting inside it); None when none predicts."""
    keys = cfg.windows
    columns = records_to_columns(
        records,
        cfg.model,
        prediction_key=keys.prediction_key,
        label_key=keys.label_key,
        features_key=keys.features_key,
        probability_key=keys.probability_key,
        probabilities_key=keys.probabilities_key,
    )
    results = compute_windows(
        columns,
        window.end_ms - window.start_ms,
        reference,
        bounds=bound_requests(cfg.thresholds.policies, cfg.model.task),
        seed=cfg.scenario.seed,
    )
    assert len(results) <= 1, f"records of one window gave {len(results)} windows"
    return results[0] if results else None


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


def _nested(what: str, stored: dict, fresh: dict, members: tuple[str, ...] = ()) -> list[str]:
    """Differences of ``{key: {member: float}}`` maps (drift stats, bounds): the same keys, members close."""
    out = [f"{what} keys: stored {sorted(stored)}, recomputed {sorted(fresh)}"] if set(stored) != set(fresh) else []
    for key, item in stored.items():
        for member in members or tuple(item):
            if key in fresh and not _close(item.get(member), fresh[key].get(member)):
                out.append(f"{what} {key}.{member}: stored {item.get(member)!r}, recomputed {fresh[key].get(member)!r}")
    return out


def differences(stored: WindowMetrics, fresh: WindowMetrics | None) -> list[str]:
    """What differs between a stored window and its recomputation (empty: they agree)."""
    if fresh is None:
        return [f"stored {stored.predictions} predictions, the records hold none"]
    out = [
        f"{name}: stored {getattr(stored, name)!r}, recomputed {getattr(fresh, name)!r}"
        for name in ("predictions", "labelled", "confusion")
        if getattr(stored, name) != getattr(fresh, name)
    ]
    out += [
        f"{name}: stored {getattr(stored, name)!r}, recomputed {getattr(fresh, name)!r}"
        for name in (*METRICS, *LATENCY)
        if not _close(getattr(stored, name), getattr(fresh, name))
    ]
    out += _nested("drift", stored.drift, fresh.drift)
    out += _nested("bound", stored.bounds, fresh.bounds, ("low", "high"))
    return out


def assert_windows_recomputed(
    store: StateStore, cfg: PipelineConfig, metrics_db: Path, artifacts_dir: Path, context: str = ""
) -> int:
    """Every stored window of the model equals its recomputation from the raw records; none a run passed is missing.

    Args:
        store: the state store (read only here).
        cfg: the pipeline config the windows were computed with.
        metrics_db: the workspace's metrics store file (``W/metrics.db``).
        artifacts_dir: where the deployments' artifacts are (their training references).
        context: put in front of every failure message (``seed=7``), so that a failure can be replayed.

    Returns:
        How many windows were checked.
    """
    where = f"{context}: " if context else ""
    window_ms = cfg.windows.length_ms
    deployments = store.deployments(cfg.model.name)
    assert deployments, f"{where}no deployment of {cfg.model.name!r} is recorded"
    by_window: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for record in raw_records(metrics_db):
        by_window[(record["modelDeploymentCrn"], window_start(record["startTimeStampMs"], window_ms))].append(record)
    checked, wrong, missing = 0, [], []
    for i, dep in enumerate(deployments):
        crn, reference = dep.deployment_crn, _reference(artifacts_dir, dep)
        stored = {w.start_ms: w for w in store.windows(deployment_crn=crn)}
        for window in stored.values():
            assert window.end_ms - window.start_ms == window_ms, f"{where}window {window.start_ms} is off the grid"
            fresh = recompute_window(cfg, by_window.get((crn, window.start_ms), []), window, reference)
            diff = differences(window, fresh)
            if diff:
                wrong.append(f"{crn} window {window.start_ms}: " + "; ".join(diff))
            checked += 1
        watermark = store.watermark(crn)
        replaced = deployments[i + 1].deployed_ms if i + 1 < len(deployments) else None
        first = window_start(dep.deployed_ms, window_ms)
        passed = [
            start
            for (c, start), records in by_window.items()
            if c == crn
            and watermark is not None
            and first <= start
            and start + window_ms <= watermark
            and (replaced is None or start < replaced)
        ]
        missing += [f"{crn} window {start}" for start in passed if start not in stored]
    assert not wrong, f"{where}{len(wrong)} of {checked} stored windows differ from the raw records: " + " | ".join(
        wrong[:5]
    )
    assert not missing, f"{where}complete windows with records were never stored: {missing[:5]}"
    return checked
