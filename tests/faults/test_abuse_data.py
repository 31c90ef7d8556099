"""Bad data: malformed metrics records, garbled endpoint answers, empty windows, labels ahead of predictions."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from localcml.metrics.store import TABLE, MetricsStore
from monitoring.app.cli import main
from monitoring.core.errors import EXIT_CONFIG, EXIT_DATA
from monitoring.workflows.redeploy import redeploy
from tests.faults.invariants import assert_invariants
from tests.faults.rig import HOUR, Rig

FEATURES = {"iot_signal_1": 0.5, "iot_signal_2": 0.5, "iot_signal_3": 0.5, "iot_signal_4": 0.5}
#: Records another writer could leave in the store (raw JSON text: NaN is not valid JSON, yet it is out there).
BAD_RECORDS = {
    "bad-missing-prediction": json.dumps({"input_features": FEATURES, "final_label": 1}),
    "bad-wrong-types": json.dumps(
        {"prediction": "yes", "final_label": "maybe", "input_features": {"iot_signal_1": "high"}}
    ),
    "bad-nan": '{"prediction": NaN, "final_label": 1, "input_features": {"iot_signal_1": NaN}}',
    "bad-huge": json.dumps({"prediction": 1e300, "final_label": 1e308, "input_features": {k: 1e308 for k in FEATURES}}),
    "bad-label-outside-classes": json.dumps({"prediction": 1, "final_label": 7, "input_features": FEATURES}),
    "bad-metrics-not-a-dict": "[1, 2, 3]",
    "bad-prediction-list": json.dumps({"prediction": [0, 1], "final_label": 0, "input_features": FEATURES}),
}


def window_of(rig: Rig, start_ms: int):
    return next(w for w in rig.ctx.store.windows(deployment_crn=rig.live().crn) if w.start_ms == start_ms)


def predictions_snapshot(rig: Rig) -> list[tuple]:
    return sorted(
        (r["predictionUuid"], r["modelDeploymentCrn"], r["startTimeStampMs"], json.dumps(r["metrics"]))
        for r in rig.records()
        if r["predictionUuid"]
    )


def test_malformed_metrics_records_are_left_out_and_left_alone(rig):
    live, model = rig.live(), rig.model
    window_start = rig.t0 - 60_000 + HOUR  # the template's second cycle
    store = MetricsStore(rig.ws.metrics_url)
    try:
        store.db.executemany(
            f"INSERT INTO {TABLE} (deployment_crn, build_crn, model_crn, prediction_uuid, start_ms, "
            "end_ms, metrics) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (live.crn, "", model.crn, uuid, window_start + 120_000 + i, window_start + 119_000 + i, text)
                for i, (uuid, text) in enumerate(BAD_RECORDS.items())
            ],
        )
    finally:
        store.close()
    rig.at(2.05)
    code, _ = rig.job("simulate_traffic")  # posts the second cycle's labels
    assert code == 0
    before = predictions_snapshot(rig)
    code, verdict = rig.job("compute_accuracy")
    assert code == 0 and verdict["status"] == "ok", rig.last_log[-3000:]
    assert predictions_snapshot(rig) == before  # computing never rewrites records
    good = [
        r
        for r in rig.records()
        if r["predictionUuid"] in set(rig.answered) and window_start <= r["startTimeStampMs"] < window_start + HOUR
    ]
    right = sum(r["metrics"]["prediction"] == r["metrics"]["final_label"] for r in good)
    window = window_of(rig, window_start)
    assert window.labelled == len(good) == 200  # no malformed record is counted as labelled
    assert window.accuracy == pytest.approx(right / len(good))
    sdk_refuses_non_finite_or_non_json_metrics_naming_the_key(rig)
    store = MetricsStore(rig.ws.metrics_url)
    try:  # the test's own foreign records go, so the label invariants see only the pipeline's
        store.db.execute(f"DELETE FROM {TABLE} WHERE prediction_uuid LIKE 'bad-%'")
    finally:
        store.close()
    assert_invariants(rig)


def test_malformed_records_are_named_in_the_log(rig):
    live = rig.live()
    store = MetricsStore(rig.ws.metrics_url)
    try:
        store.db.execute(
            f"INSERT INTO {TABLE} (deployment_crn, build_crn, model_crn, prediction_uuid, start_ms, "
            "end_ms, metrics) VALUES (?, '', '', 'bad-nan', ?, ?, ?)",
            (live.crn, rig.t0 + HOUR, rig.t0 + HOUR, BAD_RECORDS["bad-nan"]),
        )
    finally:
        store.close()
    rig.at(2.05)
    rig.job("compute_accuracy")
    assert "records ignored" in rig.last_log and live.crn in rig.last_log


def sdk_refuses_non_finite_or_non_json_metrics_naming_the_key(rig):
    """The local SDK refuses such values at the door, naming the key, and stores nothing."""
    import cdsw

    uuid = rig.answered[0]
    before = predictions_snapshot(rig)
    with pytest.raises(ValueError, match=r"metrics\['final_label'\]: nan is not allowed"):
        cdsw.track_delayed_metrics({"final_label": float("nan")}, uuid)
    with pytest.raises(ValueError, match=r"metrics\['final_label'\]: value of type object is not JSON"):
        cdsw.track_delayed_metrics({"final_label": object()}, uuid)
    with pytest.raises(ValueError, match="no prediction record with uuid not-a-prediction"):
        cdsw.track_delayed_metrics({"final_label": 1}, "not-a-prediction")
    assert predictions_snapshot(rig) == before


@pytest.mark.parametrize(
    "garble, message",
    [
        ("no-uuid", "answered without a prediction uuid"),
        ("not-json", "answered with a body that is not JSON"),
    ],
)
def test_garbled_endpoint_answers_fail_the_cycle_as_a_data_error(rig, garble, message):
    rig.ws.inject(f"endpoint={garble} always")
    code, verdict = rig.job("simulate_traffic")
    assert code == EXIT_DATA and verdict["status"] == "failed", rig.last_log[-2000:]
    assert message in verdict["summary"] and "failed after retries" in verdict["summary"]
    rig.ws.faults.clear()
    rig.at(1.5)
    code, _ = rig.job("simulate_traffic")
    assert code == 0
    assert_invariants(rig)


def test_empty_windows_are_insufficient_data_not_an_error(rig):
    deployed = redeploy(rig.ctx)  # v2 serves and has no traffic yet
    assert deployed.status == "deployed"
    rig.at(2.05)
    code, verdict = rig.job("compute_accuracy")
    assert code == 0 and "the live deployment has no labelled window yet" in verdict["summary"]
    windows = rig.ctx.store.windows()
    code, verdict = rig.job("evaluate_thresholds")
    assert code == 0 and verdict["status"] == "ok" and verdict["decision_action"] == "insufficient_data"
    assert rig.ctx.store.windows() == windows
    code, verdict = rig.job("redeploy")
    assert code == 0 and verdict["status"] == "no_action" and "insufficient_data" in verdict["summary"]
    assert_invariants(rig)


def test_a_label_that_arrives_before_its_prediction_waits_for_it(rig):
    """Ground truth for a uuid the store has not recorded yet: kept pending (named in the log), posted later."""
    live = rig.live()
    early = "0e0e0e0e-label-before-prediction"
    rig.at(1.6)
    rig.ctx.store.label_queue.add([(early, live.crn, 1, rig.ws.clock.now_ms() - 1, None)])
    code, verdict = rig.job("simulate_traffic")
    assert code == 0 and verdict["labels_waiting"] == "1"
    assert f"ground truth not posted, will retry next run uuid={early}" in rig.last_log
    assert rig.pending()[early][1] is None
    store = MetricsStore(rig.ws.metrics_url)
    try:  # the prediction's record lands after its label
        now = rig.ws.clock.now_ms()
        store.track_prediction(
            live.crn, "", rig.model.crn, early, now, now, {"prediction": 1, "input_features": FEATURES}
        )
    finally:
        store.close()
    rig.answered.append(early)
    rig.at(2.6)
    code, verdict = rig.job("simulate_traffic")
    assert code == 0 and verdict["labels_waiting"] == "0"
    assert_invariants(rig)


def test_a_bad_graph_file_is_a_config_error_naming_the_entry(rig):
    bad = rig.root / "exported.yaml"
    bad.write_text("graph:\n  - name: a\n    script: jobs/simulate_traffic.py\n    colour: blue\n")
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(
            [
                "graph",
                "plan",
                "--graph-file",
                str(bad),
                "--config",
                str(rig.config_path),
                "--project-root",
                str(rig.root),
            ]
        )
    assert code == EXIT_CONFIG and "graph[0].colour" in err.getvalue()
