"""Read queries over a time range, for the dashboard: models, the span of windows, decisions with their claim times."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from monitoring.config.metric_registry import METRICS
from monitoring.domain.decisions.decision import Decision
from monitoring.domain.windows.results import WindowMetrics
from monitoring.state.store import StateStore

_COLS = "id, body, consumed_by, outcome, outcome_detail, consumed_ms, finished_ms"


@dataclass(frozen=True)
class DecisionRow:
    """A stored decision with when redeploy claimed it (``consumed_ms``) and finished with it."""

    decision: Decision
    consumed_ms: int | None
    finished_ms: int | None


def models(store: StateStore) -> list[str]:
    """Every model the store has deployments or decisions of, sorted."""
    rows = store.db.query("SELECT model FROM deployments UNION SELECT model FROM decisions ORDER BY 1")
    return [str(r[0]) for r in rows]


def window_span(store: StateStore, model: str) -> tuple[int, int] | None:
    """``(first window start, last window end)`` of ``model``'s windows, or None when it has none."""
    row = store.db.query_one(
        "SELECT MIN(start_ms), MAX(end_ms) FROM windows "
        "WHERE deployment_crn IN (SELECT deployment_crn FROM deployments WHERE model = ?)",
        (model,),
    )
    return None if row is None or row[0] is None else (int(row[0]), int(row[1]))


def _row(r: Sequence[Any]) -> DecisionRow:
    d = Decision.from_dict(json.loads(r[1]))
    d.id, d.consumed_by, d.outcome, d.outcome_detail = r[0], r[2], r[3], r[4]
    return DecisionRow(d, None if r[5] is None else int(r[5]), None if r[6] is None else int(r[6]))


def decisions_between(
    store: StateStore, model: str, since_ms: int, until_ms: int, limit: int, offset: int = 0
) -> tuple[list[DecisionRow], int]:
    """``model``'s decisions made in ``[since_ms, until_ms)``, newest first.

    Args:
        limit: at most this many rows.
        offset: skip this many of the newest first (paging).

    Returns:
        ``(rows, total)``: the page and how many decisions the range holds.
    """
    where = "WHERE model = ? AND created_ms >= ? AND created_ms < ?"
    params = (model, int(since_ms), int(until_ms))
    total = int(store.db.query_aggregate(f"SELECT COUNT(*) FROM decisions {where}", params)[0])
    rows = store.db.query(
        f"SELECT {_COLS} FROM decisions {where} ORDER BY created_ms DESC, seq DESC LIMIT ? OFFSET ?",
        (*params, int(limit), int(offset)),
    )
    return [_row(r) for r in rows], total


@dataclass(slots=True)
class WindowRow:
    """What the dashboard reads of a stored window: one metric, coverage counts, drift and stored bounds.

    ``bounds`` holds the window's stored confidence bounds (``{"<metric>@<confidence>": {"low",
    "high", ...}}``) when the store keeps them, else it is empty. ``zero_targets``: a regressor's
    labelled rows with target 0, left out of MAPE (None: a classifier, or not stored).
    """

    deployment_crn: str
    start_ms: int
    end_ms: int
    predictions: int
    labelled: int
    value: float | None
    drift: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    bounds: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    zero_targets: int | None = None

    @classmethod
    def of(cls, window: WindowMetrics, metric: str) -> WindowRow:
        """From a whole window (tests, callers that hold one already)."""
        return cls(
            window.deployment_crn,
            window.start_ms,
            window.end_ms,
            window.predictions,
            window.labelled,
            getattr(window, metric, None),
            window.drift,
            dict(getattr(window, "bounds", None) or {}),
            getattr(window, "zero_targets", None),
        )


def _columns(store: StateStore) -> set[str]:
    return {str(d[0]).lower() for d in store.db.execute("SELECT * FROM windows WHERE 1 = 0").description}


def window_rows(
    store: StateStore, model: str, metric: str, since_ms: int | None = None, until_ms: int | None = None
) -> list[WindowRow]:
    """``model``'s windows starting in ``[since_ms, until_ms)``, oldest first, with one metric only.

    Reads only the columns the dashboard shows (10,000 windows in well under a second).

    Raises:
        KeyError: ``metric`` is not a metric of the registry.
    """
    if metric not in METRICS:
        raise KeyError(f"unknown metric {metric!r}")
    have = _columns(store)
    metric_column = f"metric_{metric}" if f"metric_{metric}" in have else "NULL"  # a registry name, never input
    bounds_column = "bounds" if "bounds" in have else "NULL"
    zero_column = "zero_targets" if "zero_targets" in have else "NULL"  # a store before schema version 8
    where = ["deployment_crn IN (SELECT deployment_crn FROM deployments WHERE model = ?)"]
    params: list[Any] = [model]
    for clause, bound in (("start_ms >= ?", since_ms), ("start_ms < ?", until_ms)):
        if bound is not None:
            where.append(clause)
            params.append(int(bound))
    rows = store.db.query(
        f"SELECT deployment_crn, start_ms, end_ms, predictions, labelled, {metric_column}, drift, {bounds_column}, "
        f"{zero_column} "
        "FROM windows "
        f"WHERE {' AND '.join(where)} ORDER BY start_ms, deployment_crn",
        params,
    )
    decode = msgspec.json.decode
    return [
        WindowRow(
            r[0],
            int(r[1]),
            int(r[2]),
            int(r[3]),
            int(r[4]),
            None if r[5] is None else float(r[5]),
            decode(r[6]) if r[6] else {},
            decode(r[7]) if r[7] else {},
            None if r[8] is None else int(r[8]),
        )
        for r in rows
    ]
