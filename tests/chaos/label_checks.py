"""What a chaos test sees of traffic runs from outside, and the labels invariant read from the stores.

``Watch`` counts rows in the workspace's metrics store and the state store (SQLite read-only,
or a PostgreSQL session of its own); ``PostCounter`` counts each label post as it lands in the
metrics store (a trigger on the store's own table), so a label posted twice is seen even when
the second post wrote the same value; ``assert_labelled_exactly_once`` checks every prediction
record against the label its row was drawn with (the simulation seed, drawn again).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path

from monitoring.workflows.recovery.seed_labels import Prediction, feature_key, seeded_labels
from tests.faults.rig import Rig


def _count_sqlite(path: Path, sql: str, args: tuple = ()) -> int:
    uri = f"file:{path}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=10)) as db:
        return int(db.execute(sql, args).fetchone()[0])


def _count_postgres(url: str, sql: str) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        return int(db.execute(sql).fetchone()[0])


class Watch:
    """Rows of a rig's traffic runs in the workspace's metrics store and in the state store.

    Args:
        rig: the fault rig.
        state: the state store: a SQLite file (default: the rig's ``var/state.db``) or a PostgreSQL URL.
    """

    def __init__(self, rig: Rig, state: Path | str | None = None):
        self.rig = rig
        self.metrics = rig.ws.workspace_dir / "metrics.db"
        self.state = state or rig.root / "var" / "state.db"

    def _state(self, sql: str) -> int:
        if isinstance(self.state, str) and self.state.startswith("postgresql"):
            return _count_postgres(self.state, sql)
        return _count_sqlite(Path(self.state), sql)

    def records(self) -> int:
        sql = "SELECT COUNT(*) FROM model_metrics WHERE prediction_uuid <> '' AND deployment_crn = ?"
        return _count_sqlite(self.metrics, sql, (self.rig.live().crn,))

    def labelled(self) -> int:
        sql = "SELECT COUNT(*) FROM model_metrics WHERE prediction_uuid <> '' AND metrics LIKE ?"
        return _count_sqlite(self.metrics, sql, (f'%"{self.rig.cfg.windows.label_key}"%',))

    def intents(self) -> int:
        return self._state("SELECT COUNT(*) FROM label_intents")

    def queued(self) -> int:
        return self._state("SELECT COUNT(*) FROM pending_labels")

    def unposted(self) -> int:
        return self._state("SELECT COUNT(*) FROM pending_labels WHERE posted_ms IS NULL")

    def posting(self) -> int:
        return self._state("SELECT COUNT(*) FROM pending_labels WHERE posting_ms IS NOT NULL AND posted_ms IS NULL")

    def aggregates_intended(self) -> int:
        return self._state("SELECT COUNT(*) FROM aggregates_sent")

    def aggregates_sending(self) -> int:
        return self._state("SELECT COUNT(*) FROM aggregates_sent WHERE state = 'sending'")

    def lease_held_by(self, name: str, pid: int) -> bool:
        """Whether process ``pid`` (of this host) holds lease ``name``."""
        assert "'" not in name
        return self._state(f"SELECT COUNT(*) FROM leases WHERE name = '{name}' AND holder LIKE '%:{int(pid)}:%'") > 0


class PostCounter:
    """Each label post that lands in the metrics store, counted per prediction (a SQLite trigger on ``model_metrics``).

    The workspace's store merges a posted label into the record with one ``UPDATE`` per post;
    the trigger notes the uuid each time the record holds the label after it. Installed on the
    real store file, it sees posts of every process (jobs, the workspace).
    """

    TABLE = "chaos_label_posts"

    def __init__(self, metrics_db: Path, label_key: str):
        self.metrics_db = metrics_db
        path = json.dumps(label_key)  # a JSON path member, quoted
        assert "'" not in path, f"label key {label_key!r}: a quote cannot go into the trigger's SQL"
        with contextlib.closing(sqlite3.connect(metrics_db, timeout=30)) as db, db:
            db.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} (uuid TEXT NOT NULL, at TEXT, before TEXT)")
            db.execute(
                f"CREATE TRIGGER IF NOT EXISTS {self.TABLE}_count AFTER UPDATE OF metrics ON model_metrics "
                f"WHEN new.prediction_uuid <> '' AND json_extract(new.metrics, '$.{path}') IS NOT NULL "
                f"BEGIN INSERT INTO {self.TABLE} (uuid, at, before) "
                f"VALUES (new.prediction_uuid, strftime('%H:%M:%f', 'now'), old.metrics); END"
            )

    def posts(self) -> dict[str, int]:
        """uuid -> how many posts of its label landed since the counter was installed."""
        uri = f"file:{self.metrics_db}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            rows = db.execute(f"SELECT uuid, COUNT(*) FROM {self.TABLE} GROUP BY uuid").fetchall()
        return {u: int(n) for u, n in rows}

    def assert_none_twice(self) -> int:
        """No label was posted twice; returns how many were posted."""
        posts = self.posts()
        twice = sorted(u for u, n in posts.items() if n > 1)
        assert not twice, f"{len(twice)} labels were posted more than once, e.g. {self.landings(twice[:3])}"
        return len(posts)

    def landings(self, uuids: list[str]) -> dict[str, list[tuple[str, str]]]:
        """uuid -> when each post of its label landed (UTC) and what the record held before it."""
        uri = f"file:{self.metrics_db}?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as db:
            marks = ", ".join("?" * len(uuids))
            rows = db.execute(
                f"SELECT uuid, at, before FROM {self.TABLE} WHERE uuid IN ({marks}) ORDER BY rowid", uuids
            )
            found: dict[str, list[tuple[str, str]]] = {}
            for uuid, at, before in rows:
                found.setdefault(uuid, []).append((at, before))
        return found


def assert_labelled_exactly_once(rig: Rig, since_ms: int) -> int:
    """Every prediction record since ``since_ms`` holds its row's label, queued once and posted; no intent is left.

    Returns:
        How many records were checked.
    """
    rig.settle()
    store, cfg = rig.ctx.store, rig.cfg
    assert store.label_queue.intents() == [], "intents were left unresolved"
    crn, key = rig.live().crn, cfg.windows.label_key
    mine = [
        r
        for r in rig.records()
        if r["predictionUuid"] and r["modelDeploymentCrn"] == crn and r["startTimeStampMs"] >= since_ms
    ]
    assert mine, "no prediction was recorded"
    queue = {
        u: (int(label), posted)
        for u, label, posted in store.db.query("SELECT uuid, label, posted_ms FROM pending_labels")
    }
    unlabelled = [r["predictionUuid"] for r in mine if key not in r["metrics"]]
    assert not unlabelled, f"{len(unlabelled)} of {len(mine)} predictions have no label, e.g. {unlabelled[:3]}"
    unqueued = [r["predictionUuid"] for r in mine if r["predictionUuid"] not in queue]
    assert not unqueued, f"{len(unqueued)} labelled predictions have no queued label"
    assert all(queue[r["predictionUuid"]][1] is not None for r in mine), (
        "a label is on its record but not marked posted"
    )
    names = list(cfg.model.feature_names)
    drawn = seeded_labels(
        rig.ctx,
        [
            Prediction(
                crn,
                r["predictionUuid"],
                r["startTimeStampMs"],
                r["endTimeStampMs"],
                feature_key(r["metrics"], cfg.windows.features_key, names),
                False,
            )
            for r in mine
        ],
        store.scenario_epoch(cfg.model.name),
    )
    assert (drawn.unmatched, drawn.retried) == (0, 0), "a record is not a row of the scenario, or a row was sent twice"
    truth = {u: label for u, _, label, *_ in drawn.rows}
    wrong = [r["predictionUuid"] for r in mine if r["metrics"][key] != truth[r["predictionUuid"]]]
    assert not wrong, f"{len(wrong)} predictions hold another row's label, e.g. {wrong[:3]}"
    assert all(queue[r["predictionUuid"]][0] == truth[r["predictionUuid"]] for r in mine)
    return len(mine)


def field(line: str, name: str) -> str:
    """A ``name=value`` field of a log line ('' when absent)."""
    return dict(p.split("=", 1) for p in line.split() if "=" in p).get(name, "")
