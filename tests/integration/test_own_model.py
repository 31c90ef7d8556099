"""A data set replayed as traffic across job runs, and a champion deployed by other means, on the local workspace."""

from __future__ import annotations

import textwrap

import numpy as np
import pandas as pd
import pytest

from monitoring.cmlclient.waits import wait_for_build, wait_for_deployment
from monitoring.core.errors import PlatformError
from monitoring.domain.data.scenario import TelcoScenario
from monitoring.workflows.traffic import simulate_traffic
from tests.integration.support import T0

MINUTE = 60_000
ROWS = 150
#: Rows one minute apart from the start of data set time; labels known 30 minutes after each row.
REPLAY = {
    "data": {
        "replay": {
            "source": {"kind": "csv", "path": "data/replay.csv"},
            "event_time": "seen_at",
            "label_delay": "30m",
            "start": "2026-01-01T00:00:00Z",
        }
    },
    "scenario": {"request_timeout": "5s"},
}
DATA_T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def write_replay(root) -> pd.DataFrame:
    frame = TelcoScenario().generate(ROWS, np.random.default_rng(99))
    frame["row"] = np.arange(ROWS)
    frame["seen_at"] = pd.to_datetime(DATA_T0 + frame["row"] * MINUTE, unit="ms", utc=True).dt.strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    (root / "data").mkdir()
    frame.sample(frac=1, random_state=1).to_csv(
        root / "data" / "replay.csv", index=False
    )  # file order is not time order
    return frame


def sent_rows(pipeline, frame: pd.DataFrame) -> list[int]:
    """The replay rows the metrics store holds, by their first feature (unique per row), in time order."""
    live = pipeline.ctx.platform.api.live_deployment(pipeline.ctx.require_model())
    records = pipeline.ctx.platform.metrics.read(live.crn, 0, T0 + 100 * 3_600_000)
    by_value = {round(v, 3): int(r) for v, r in zip(frame["iot_signal_1"], frame["row"])}
    values = [round(r["metrics"]["input_features"]["iot_signal_1"], 3) for r in records if r.get("predictionUuid")]
    return [by_value[v] for v in values if v in by_value]  # not the smoke call of the bootstrap


def test_replay_sends_each_row_once_at_its_time_and_resumes_after_a_failed_run(make_pipeline):
    pipeline = make_pipeline(REPLAY)
    frame = write_replay(pipeline.root)
    assert frame["iot_signal_1"].round(3).nunique() == ROWS
    # the first run (a minute into its cycle) sends the data of its cycle so far: minutes 0 to 61 ...
    pipeline.at_cycle(1)
    out = simulate_traffic(pipeline.ctx)
    assert out.fields["predictions"] == 62 and (out.fields["replay_from"], out.fields["replay_to"]) == (0, 62)
    assert out.fields["data_time"] == "2026-01-01T01:01:00Z"
    # ... a second run at the same time sends nothing again
    assert simulate_traffic(pipeline.ctx).fields["predictions"] == 0
    # a run whose requests fail stops early; the next one resumes where it stopped, skipping none
    pipeline.at_cycle(2)
    pipeline.ws.inject("endpoint=429 always")
    with pytest.raises(PlatformError, match="failed after retries"):
        simulate_traffic(pipeline.ctx)
    stopped = pipeline.ctx.store.replay_progress(pipeline.cfg.model.name).position
    assert 62 <= stopped < 122
    pipeline.ws.faults.clear()
    out = simulate_traffic(pipeline.ctx)
    assert out.fields["replay_from"] == stopped and out.fields["replay_to"] == 122
    pipeline.at_cycle(4)
    out = simulate_traffic(pipeline.ctx)
    assert out.fields["replay_to"] == ROWS and out.fields["predictions"] == ROWS - 122
    assert out.status == "ok" and "replay_exhausted" not in out.fields  # the last rows went out in this run
    pipeline.at_cycle(5)  # nothing is left: the run says so, in its status and its own VERDICT field
    over = simulate_traffic(pipeline.ctx)
    assert over.status == "replay_exhausted" and over.fields["replay_exhausted"] is True
    assert over.fields["predictions"] == 0 and "the replayed data set is exhausted" in over.summary
    assert "pause the head job's schedule" in over.action
    rows = sent_rows(pipeline, frame)
    answered = [r for r in rows if not (62 <= r < stopped)]  # rows refused by the failed run have no record
    assert sorted(set(rows)) == sorted(rows), "a row was sent twice"
    assert set(range(ROWS)) - set(rows) <= set(range(62, stopped)), "a row was skipped"
    # each run sends its cycle's rows after the previous run's (within a run, 4 requests at a time
    # finish in whatever order the threads are scheduled)
    runs = [0 if row < 62 else 1 if row < 122 else 2 for row in answered]
    assert runs == sorted(runs), "a run's rows were recorded before an earlier run's"
    # labels were posted at their label time: every label of the first two hours of data is in
    assert pipeline.ctx.store.label_queue.counts()["posted"] >= 122 - (stopped - 62)


OWN_PREDICT = '''
"""A model deployed by other means: a rule, tracked with cml-monitor's helper."""
import cdsw

from monitoring.serving.tracking import track_prediction


@cdsw.model_metrics
def predict(args):
    features = {name: float(args[name]) for name in ("iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4")}
    prediction = int(features["iot_signal_1"] > 9.0)
    track_prediction(features, prediction, "rules-2024")
    return prediction
'''


def test_a_champion_deployed_by_other_means_is_judged_from_its_own_logged_predictions(make_pipeline):
    pipeline = make_pipeline({"retraining": {"min_improvement": 0.0}}, do_bootstrap=False)
    (pipeline.root / "own_model.py").write_text(textwrap.dedent(OWN_PREDICT))
    ctx, cfg = pipeline.ctx, pipeline.cfg
    api = ctx.platform.api
    model = api.create_model(cfg.model.name, "the team's own rule", cfg.model.auth_enabled)
    build = api.create_build(model, "own_model.py", "predict", "own rule", None)
    wait_for_build(ctx.platform, model, build, 120, 0.2)
    deployment = api.create_deployment(model, build, 1, 2, 1, {})
    wait_for_deployment(ctx.platform, model, deployment, 120, 0.2)
    for cycle in (1, 2):
        out = pipeline.cycle(cycle)
    assert out["evaluate"].action != "none" or out["redeploy"].status == "deployed", out
    result = out["redeploy"]
    assert result.status == "deployed", result.summary
    fields = result.fields
    assert fields["champion"] == "?" and fields["champion_judged_by"] == "logged predictions"
    # the champion's accuracy is that of its logged predictions on the held-out rows it served
    records = ctx.platform.metrics.read(deployment.crn, 0, T0 + 10 * 3_600_000)
    logged = [r["metrics"] for r in records if r.get("predictionUuid") and "final_label" in r["metrics"]]
    rule_accuracy = np.mean([m["prediction"] == m["final_label"] for m in logged])
    assert abs(fields["champion_value"] - rule_accuracy) < 0.12  # held-out rows are the newest 30% of them
    assert fields["challenger_value"] > fields["champion_value"]
    assert fields["version"] == "v1" and api.live_deployment(model).environment["CML_MONITOR_MODEL_ARTIFACT"].endswith(
        "/v1"
    )
