"""The state store's part in replays: labels of any JSON type, the replay watermark, the label column migration."""

from __future__ import annotations

import pytest

from monitoring.core.db import Database
from monitoring.core.errors import DataError
from monitoring.state.store import StateStore

CRN = "crn:deployment"


def test_labels_keep_their_type(store):
    store.label_queue.add(
        [
            ("u1", CRN, "Yes", 10, None),
            ("u2", CRN, 1, 20, None),
            ("u3", CRN, 351_000.5, 30, None),
            ("u4", CRN, "1", 40, None),
        ]
    )
    assert store.label_queue.due(100, 10) == [("u1", "Yes"), ("u2", 1), ("u3", 351_000.5), ("u4", "1")]
    assert [type(v) for _, v in store.label_queue.due(100, 10)] == [str, int, float, str]
    with pytest.raises(DataError, match="label nan is not a finite number"):
        store.label_queue.add([("u5", CRN, float("nan"), 50, None)])
    with pytest.raises(DataError, match=r"label \[1\] is not a string or a number"):
        store.label_queue.add([("u6", CRN, [1], 50, None)])
    assert len(store.label_queue.due(100, 10)) == 4  # nothing of a refused batch was written


def test_replay_progress_starts_once_and_moves_where_a_run_sets_it(store):
    assert store.replay_progress("m") is None
    first = store.start_replay("m", epoch_ms=1000, total=50, digest="abc", now_ms=5)
    assert (first.epoch_ms, first.position, first.total, first.digest) == (1000, 0, 50, "abc")
    again = store.start_replay("m", epoch_ms=9999, total=60, digest="other", now_ms=6)
    assert again == first  # the first start stands: a second run resumes it
    store.move_replay("m", 30, now_ms=7)  # rows claimed before sending
    store.move_replay("m", 20, now_ms=8)  # the run ended having sent 20
    assert store.replay_progress("m").position == 20
    store.move_replay("other-model", 5, now_ms=9)
    assert store.replay_progress("m").position == 20


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
        store.label_queue.add([("new", CRN, "Yes", 6, None)])
        assert store.label_queue.due(10, 10) == [("old", 1), ("new", "Yes")]
    with StateStore(pg_url) as store:  # opening it again changes nothing
        assert store.label_queue.due(10, 10) == [("old", 1), ("new", "Yes")]


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
        store.label_queue.add([("a", CRN, "No", 6, None), ("b", CRN, 2.5, 7, None), ("c", CRN, 3, 8, None)])
        assert store.label_queue.due(10, 10) == [("old", 0), ("a", "No"), ("b", 2.5), ("c", 3)]
        types = {r[1]: r[2] for r in store.db.query("SELECT * FROM pragma_table_info('pending_labels')")}
        assert types["label"] == "TEXT"
