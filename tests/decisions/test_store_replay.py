"""The state store's part in replays: labels of any JSON type, the replay watermark, the label column migration."""

from __future__ import annotations

import pytest

from monitoring.core.db import Database
from monitoring.core.errors import DataError
from monitoring.state.store import StateStore

CRN = "crn:deployment"


def test_labels_keep_their_type(store):
    store.add_pending_labels(
        [("u1", CRN, "Yes", 10), ("u2", CRN, 1, 20), ("u3", CRN, 351_000.5, 30), ("u4", CRN, "1", 40)]
    )
    assert store.due_labels(100, 10) == [("u1", "Yes"), ("u2", 1), ("u3", 351_000.5), ("u4", "1")]
    assert [type(v) for _, v in store.due_labels(100, 10)] == [str, int, float, str]
    with pytest.raises(DataError, match="label nan is not a finite number"):
        store.add_pending_labels([("u5", CRN, float("nan"), 50)])
    with pytest.raises(DataError, match=r"label \[1\] is not a string or a number"):
        store.add_pending_labels([("u6", CRN, [1], 50)])
    assert len(store.due_labels(100, 10)) == 4  # nothing of a refused batch was written


def test_replay_progress_starts_once_and_only_moves_forward(store):
    assert store.replay_progress("m") is None
    first = store.start_replay("m", epoch_ms=1000, total=50, digest="abc", now_ms=5)
    assert (first.epoch_ms, first.position, first.total, first.digest) == (1000, 0, 50, "abc")
    again = store.start_replay("m", epoch_ms=9999, total=60, digest="other", now_ms=6)
    assert again == first  # the first start stands: a second run resumes it
    store.advance_replay("m", 20, [("u1", CRN, "No", 100), ("u2", CRN, "Yes", 200)], now_ms=7)
    store.advance_replay("m", 10, [], now_ms=8)  # an earlier position never moves it back
    assert store.replay_progress("m").position == 20
    assert store.due_labels(1000, 10) == [("u1", "No"), ("u2", "Yes")]


def test_a_refused_label_leaves_the_replay_where_it_was(store):
    store.start_replay("m", 0, 10, "d", 0)
    with pytest.raises(DataError):
        store.advance_replay("m", 5, [("u1", CRN, "ok", 1), ("u2", CRN, None, 1)], now_ms=1)
    assert store.replay_progress("m").position == 0 and store.due_labels(10, 10) == []


@pytest.mark.postgres
@pytest.mark.slow
def test_an_integer_label_column_of_an_earlier_store_is_widened_in_place(pg_url):
    db = Database(pg_url)
    db.script(
        "CREATE TABLE pending_labels (uuid TEXT PRIMARY KEY, deployment_crn TEXT NOT NULL, "
        "label INTEGER NOT NULL, due_ms BIGINT NOT NULL, posted_ms BIGINT)"
    )
    db.execute("INSERT INTO pending_labels (uuid, deployment_crn, label, due_ms) VALUES ('old', 'c', 1, 5)")
    db.close()
    with StateStore(pg_url) as store:
        store.add_pending_labels([("new", CRN, "Yes", 6)])
        assert store.due_labels(10, 10) == [("old", 1), ("new", "Yes")]
    with StateStore(pg_url) as store:  # opening it again changes nothing
        assert store.due_labels(10, 10) == [("old", 1), ("new", "Yes")]


def test_an_integer_label_column_of_an_earlier_sqlite_store_becomes_text(tmp_path):
    url = f"sqlite:///{tmp_path / 'state.db'}"
    db = Database(url)
    db.script(
        "CREATE TABLE pending_labels (uuid TEXT PRIMARY KEY, deployment_crn TEXT NOT NULL, "
        "label INTEGER NOT NULL, due_ms BIGINT NOT NULL, posted_ms BIGINT)"
    )
    db.execute("INSERT INTO pending_labels (uuid, deployment_crn, label, due_ms) VALUES ('old', 'c', 0, 5)")
    db.close()
    with StateStore(url) as store:
        store.add_pending_labels([("a", CRN, "No", 6), ("b", CRN, 2.5, 7), ("c", CRN, 3, 8)])
        assert store.due_labels(10, 10) == [("old", 0), ("a", "No"), ("b", 2.5), ("c", 3)]
        types = {r[1]: r[2] for r in store.db.query("SELECT * FROM pragma_table_info('pending_labels')")}
        assert types["label"] == "TEXT"
