"""Read queries over a time range, for the dashboard: models, the span of windows, decisions with their claim times."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monitoring.domain.decisions import Decision
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
    total = int(store.db.query_one(f"SELECT COUNT(*) FROM decisions {where}", params)[0])
    rows = store.db.query(
        f"SELECT {_COLS} FROM decisions {where} ORDER BY created_ms DESC, seq DESC LIMIT ? OFFSET ?",
        (*params, int(limit), int(offset)),
    )
    return [_row(r) for r in rows], total
