"""Adopting a model deployed by other means: check-deployment against the contract, on the local workspace."""

from __future__ import annotations

import textwrap

from monitoring.app.cli import main
from monitoring.cmlclient.waits import wait_for_build, wait_for_deployment
from monitoring.core.errors import EXIT_DATA
from monitoring.workflows.adoption import PROBE_PREFIX, check_deployment
from tests.integration.ground_truth_support import GROUND_TRUTH

#: A team's own predict function: tracks the features and the prediction, forgets the version and the key.
FORGETFUL = """
import cdsw


@cdsw.model_metrics
def predict(args):
    features = {name: float(args[name]) for name in ("iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4")}
    cdsw.track_metric("input_features", {k: v for k, v in features.items() if k != "iot_signal_4"})
    cdsw.track_metric("prediction", "high")
    return 0
"""

#: The same rule meeting the contract with cml-monitor's helper, the business key included.
COMPLIANT = """
import cdsw

from monitoring.serving.tracking import track_prediction


@cdsw.model_metrics
def predict(args):
    features = {name: float(args[name]) for name in ("iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4")}
    prediction = int(features["iot_signal_1"] > 9.0)
    track_prediction(features, prediction, "rules-2024", keys={"customer_id": args.get("customer_id")})
    return prediction
"""


def deploy_own(pipeline, code: str, name: str):
    (pipeline.root / f"{name}.py").write_text(textwrap.dedent(code))
    ctx, cfg = pipeline.ctx, pipeline.cfg
    api = ctx.platform.api
    model = api.find_model(cfg.model.name) or api.create_model(cfg.model.name, "own", cfg.model.auth_enabled)
    build = api.create_build(model, f"{name}.py", "predict", name, None)
    wait_for_build(ctx.platform, model, build, 120, 0.2)
    deployment = api.create_deployment(model, build, 1, 2, 1, {})
    wait_for_deployment(ctx.platform, model, deployment, 120, 0.2)
    return deployment


def test_check_deployment_names_what_an_own_model_does_not_track_then_accepts_it(make_pipeline, capsys):
    pipeline = make_pipeline(GROUND_TRUTH, do_bootstrap=False)
    deploy_own(pipeline, FORGETFUL, "forgetful")
    out = check_deployment(pipeline.ctx)
    assert out.status == "contract_not_met" and out.exit_code == EXIT_DATA
    for problem in (
        "'input_features': lacks the feature(s) ['iot_signal_4']",
        "'prediction': 'high' is not one of model.label.classes [0, 1]",
        "'model_version': not tracked",
        "'customer_id' (ground_truth.key): not tracked",
    ):
        assert problem in out.summary
    assert out.fields["problems"] == 4
    # the command: exit code 4 and the VERDICT
    assert main(["check-deployment", "--project-root", str(pipeline.root)]) == EXIT_DATA
    assert "VERDICT job=check_deployment status=contract_not_met" in capsys.readouterr().out

    deploy_own(pipeline, COMPLIANT, "compliant")
    out = check_deployment(pipeline.ctx)
    assert out.status == "ok" and out.exit_code == 0, out.summary
    assert "no probability tracked" in out.summary and "customer_id" in out.fields["tracked"]
    live = pipeline.ctx.platform.api.live_deployment(pipeline.ctx.require_model())
    probes = [
        r["metrics"]["customer_id"]
        for r in pipeline.ctx.platform.metrics.read(live.crn, 0, 10**13)
        if r.get("predictionUuid") == out.fields["prediction_uuid"]
    ]
    assert len(probes) == 1 and probes[0].startswith(PROBE_PREFIX)  # no real customer's label can join it


def test_the_generic_serving_function_meets_the_contract_with_the_business_key(make_pipeline):
    pipeline = make_pipeline(GROUND_TRUTH)
    out = check_deployment(pipeline.ctx)
    assert out.status == "ok", out.summary
    assert {"customer_id", "input_features", "prediction", "model_version", "probability"} <= set(out.fields["tracked"])
