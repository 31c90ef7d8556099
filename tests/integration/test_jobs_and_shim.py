"""Jobs as CML runs them (real job runs), the verdict line, secrets, and Cloudera-style scripts via the shim."""

import json
import os
import subprocess
import sys
import textwrap
import time

from monitoring.app import graph
from monitoring.app.demo import verdict_fields
from monitoring.app.jobrun import run_job
from monitoring.workflows.traffic import simulate_traffic
from tests.project import make_project


def wait_runs(api, job_id, count=1, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.job_runs(job_id, limit=10)
        if len(runs) >= count and all(r.finished for r in runs):
            return runs
        time.sleep(0.1)
    raise AssertionError(f"runs of {job_id} did not finish")


def test_dependents_do_not_run_when_the_head_job_fails(make_pipeline):
    p = make_pipeline(do_bootstrap=False)  # no model yet: simulate_traffic must fail with a data error
    graph.apply(p.ctx.platform.api, p.cfg)
    ids = {j.name: j.id for j in p.ctx.platform.api.jobs()}
    head, child = (ids[s.name] for s in p.cfg.jobs.graph[:2])
    p.ctx.platform.api.start_job_run(head)
    (run,) = wait_runs(p.ctx.platform.api, head)
    assert run.status == "ENGINE_FAILED"
    log = (p.ws.workspace_dir / "runs" / f"{run.id}.log").read_text()
    last = [ln for ln in log.splitlines() if " job=" in ln][-1]  # the engine wrapper may add its own line
    assert "VERDICT job=simulate_traffic status=failed" in last
    assert verdict_fields(log)["exit_code"] == "4"
    assert "run `cml-monitor bootstrap` first" in last
    time.sleep(0.5)  # give a (wrongly) started dependent time to show up: it must not
    assert p.ctx.platform.api.job_runs(child) == []


def test_secrets_never_reach_job_logs_even_on_failure(make_pipeline, monkeypatch, capsys):
    p = make_pipeline()
    planted = "planted-model-api-key-7f3a9c"
    monkeypatch.setenv(p.cfg.model.api_key_env, planted)
    model = p.ctx.platform.api.find_model(p.cfg.model.name)
    config = p.root / "config/pipeline.yaml"
    code = run_job("simulate_traffic", simulate_traffic, ["--config", str(config), "--project-root", str(p.root)])
    out = capsys.readouterr().out
    assert code == 3, out  # the endpoint refuses the wrong key: a platform error, not retried
    assert planted not in out and model.access_key not in out
    assert "HTTP 401" in out and "VERDICT job=simulate_traffic status=failed" in out.splitlines()[-1]


CLOUDERA_STYLE = textwrap.dedent("""
    import json, os, time
    import cdsw, cmlapi

    client = cmlapi.default_client()
    project_id = os.environ["CDSW_PROJECT_ID"]
    models = client.list_models(project_id=project_id, async_req=True).get().to_dict()
    model = [m for m in models["models"] if m["name"] == "telco-cell-tower-failure"][0]
    builds = client.list_model_builds(project_id=project_id, model_id=model["id"], sort="-created_at").to_dict()
    build_id = builds["model_builds"][0]["id"]
    deps = client.list_model_deployments(project_id=project_id, model_id=model["id"], build_id=build_id).to_dict()
    crn = [d for d in deps["model_deployments"] if d["status"] == "deployed"][0]["crn"]
    record = {"iot_signal_1": 5.0, "iot_signal_2": 52.0, "iot_signal_3": 103.0, "iot_signal_4": 40.0}
    out = cdsw.call_model(model["access_key"], record, api_key=os.environ["CML_MONITOR_MODEL_API_KEY"])
    uuid = out["response"]["uuid"]
    cdsw.track_delayed_metrics({"final_label": 1}, uuid)
    now = int(time.time() * 1000) + 10 ** 9
    metrics = cdsw.read_metrics(model_deployment_crn=crn, start_timestamp_ms=0, end_timestamp_ms=now)
    mine = [r for r in metrics["metrics"] if r["predictionUuid"] == uuid][0]
    print(json.dumps({"prediction": out["response"]["prediction"], "metrics": mine["metrics"]}))
""")


def test_a_cloudera_style_script_runs_unchanged_through_the_shim(tmp_path):
    config = make_project(tmp_path)
    script = tmp_path / "cloudera_example.py"
    script.write_text(CLOUDERA_STYLE)
    cli = [sys.executable, "-m", "monitoring.app.cli"]
    common = ["--config", str(config), "--project-root", str(tmp_path)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDSW_", "CML_MONITOR_"))}
    try:
        subprocess.run(
            cli + ["bootstrap", *common], cwd=tmp_path, env=env, check=True, capture_output=True, timeout=300
        )
        shell = f'eval "$({" ".join(cli)} local env {" ".join(common)})" && {sys.executable} {script}'
        proc = subprocess.run(["bash", "-c", shell], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    finally:
        subprocess.run(cli + ["local", "down", *common], cwd=tmp_path, env=env, capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["prediction"] in (0, 1)
    assert result["metrics"]["final_label"] == 1
    assert set(result["metrics"]["input_features"]) == {"iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4"}
