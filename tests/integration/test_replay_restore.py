"""Restoring an older backup of a replay's state store: the rows sent since the backup are found in the
metrics store, never sent again, and the predictions made of them get their rows' labels."""

from __future__ import annotations

import contextlib
import io

from monitoring.app.cli import main as cli
from monitoring.core.errors import EXIT_OK
from monitoring.domain.records.keys import UUID_KEY
from monitoring.state.label_queue import label_value
from monitoring.workflows.traffic import simulate_traffic
from tests.integration.support import SMALL_REPLAYS, Pipeline


def _state(pipeline: Pipeline, *args: str) -> tuple[int, str]:
    pipeline.ctx.store.close()
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli(
            [
                "state",
                *args,
                "--project-root",
                str(pipeline.root),
                "--config",
                str(pipeline.root / "config/pipeline.yaml"),
            ]
        )
    pipeline.reopen()
    return code, out.getvalue()


def _traffic(pipeline: Pipeline, cycle: int) -> dict:
    pipeline.at_cycle(cycle)
    return simulate_traffic(pipeline.ctx).fields


def test_restoring_an_older_backup_of_a_replay_sends_no_row_twice_and_labels_each_once(make_pipeline):
    pipeline = make_pipeline(SMALL_REPLAYS["churn"], example="churn")  # 150 customers an hour
    smoke = len(pipeline.predictions())  # the bootstrap's call of the new deployment
    sent = _traffic(pipeline, 1)["replay_to"]
    assert _state(pipeline, "backup", "--out", str(pipeline.root / "older.db"))[0] == EXIT_OK
    for cycle in (2, 3):  # rows sent, and labels queued and posted, after the backup
        sent = _traffic(pipeline, cycle)["replay_to"]
    label_of = {u: label_value(y) for u, y in pipeline.ctx.store.db.query("SELECT uuid, label FROM pending_labels")}
    assert len(pipeline.predictions()) - smoke == sent

    code, out = _state(pipeline, "restore", str(pipeline.root / "older.db"))
    assert code == EXIT_OK, out
    progress = pipeline.ctx.store.replay_progress(pipeline.cfg.model.name)
    assert progress.position == sent, out
    assert f"the replay goes on from row {sent}" in out, out
    queued = {u: label_value(y) for u, y in pipeline.ctx.store.db.query("SELECT uuid, label FROM pending_labels")}
    assert queued.items() <= label_of.items(), "a label was queued again under another prediction, or another label"

    fields = _traffic(pipeline, 4)
    assert fields["replay_from"] == sent, fields
    for cycle in (5, 6):  # every label falls due and is posted
        fields = _traffic(pipeline, cycle)
    records = pipeline.predictions()
    assert len(records) - smoke == fields["replay_to"], "a row was sent twice"
    label_key = pipeline.cfg.windows.label_key
    labels = {r[UUID_KEY]: r["metrics"][label_key] for r in records if label_key in r["metrics"]}
    assert label_of.keys() <= labels.keys(), "a prediction made before the restore was never labelled"
    assert {u: labels[u] for u in label_of} == label_of, "a prediction got another row's label"
    assert len(labels) >= len(label_of) + fields["replay_from"] - sent  # and the rows sent since the restore
