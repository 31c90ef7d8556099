"""The local workspace standing alone: a daemon, a project, a job, a model and metrics, without the library.

The client runs in a process that cannot import ``monitoring`` (``tests/no_library``), and so does
the daemon it starts; the job engine and the model replica report any module of the library
they loaded.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from localcml import daemon
from tests.project import REPO

JOB = """\
import os, sys
import cdsw, cmlapi

cmlapi.default_client().get_project(os.environ["CDSW_PROJECT_ID"])
cdsw.track_delayed_metrics({"final_label": 42}, os.environ["PREDICTION_UUID"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] == "monitoring")
if loaded:
    raise SystemExit(f"the job engine loaded the library: {loaded}")
print("ground truth posted")
"""
MODEL = """\
import sys
import cdsw

@cdsw.model_metrics
def predict(args):
    cdsw.track_metric("input_features", args)
    cdsw.track_metric("prediction", args["x"] * 2)
    return {"y": args["x"] * 2, "library": sorted(m for m in sys.modules if m.split(".")[0] == "monitoring")}
"""
CLIENT = """\
import json, os, sys, time
from pathlib import Path

import localcml

W, ROOT = Path(sys.argv[1]), Path(sys.argv[2])


def until(check, what, timeout=90.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)  # a real process is starting: short bounded polling
    return value


info = localcml.ensure_running(W, ROOT)
try:
    localcml.activate(info.env)
    import cdsw, cmlapi

    client = cmlapi.default_client()
    runtime = client.list_runtimes().runtimes[0].image_identifier
    project = client.create_project(cmlapi.CreateProjectRequest(name="alone"))
    folder = W / "projects" / project.id
    (folder / "model.py").write_text(os.environ["MODEL_SOURCE"])
    (folder / "label.py").write_text(os.environ["JOB_SOURCE"])
    model = client.create_model(cmlapi.CreateModelRequest(project_id=project.id, name="doubler"), project.id)
    build = client.create_model_build(
        cmlapi.CreateModelBuildRequest(file_path="model.py", function_name="predict", runtime_identifier=runtime),
        project.id,
        model.id,
    )
    until(lambda: client.get_model_build(project.id, model.id, build.id).status == "built", "the build")
    deployment = client.create_model_deployment(
        cmlapi.CreateModelDeploymentRequest(replicas=1), project.id, model.id, build.id
    )
    until(lambda: client.get_model_deployment(project.id, model.id, build.id, deployment.id).status == "deployed", "the deployment")
    answer = cdsw.call_model(model.access_key, {"x": 21}, api_key=os.environ["CML_MONITOR_MODEL_API_KEY"])
    uuid = answer["response"]["uuid"]
    job = client.create_job(
        cmlapi.CreateJobRequest(
            name="label", script="label.py", runtime_identifier=runtime, environment={"PREDICTION_UUID": uuid}
        ),
        project.id,
    )
    run = client.create_job_run(cmlapi.CreateJobRunRequest(), project.id, job.id)
    ended = ("ENGINE_SUCCEEDED", "ENGINE_FAILED", "ENGINE_TIMEDOUT", "ENGINE_STOPPED")
    status = until(lambda: (s := client.get_job_run(project.id, job.id, run.id).status) in ended and s, "the job run")
    log = (W / "runs" / f"{run.id}.log").read_text()
    crn = client.get_model_deployment(project.id, model.id, build.id, deployment.id).crn
    records = cdsw.read_metrics(model_deployment_crn=crn)["metrics"]
    library = sorted(m for m in sys.modules if m.split(".")[0] == "monitoring")
    print(json.dumps({"answer": answer, "run": status, "log": log[-2000:], "records": records, "library": library}))
finally:
    localcml.shutdown(W)
"""


def test_a_workspace_serves_a_project_job_model_and_metrics_without_the_library(tmp_path):
    workspace, root, attempts = tmp_path / "w", tmp_path / "root", tmp_path / "attempts.log"
    root.mkdir()
    script = tmp_path / "client.py"
    script.write_text(CLIENT)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("CDSW_", "CML_MONITOR_"))},
        "PYTHONPATH": str(REPO / "tests" / "no_library"),
        "NO_LIBRARY_ATTEMPTS": str(attempts),
        "MODEL_SOURCE": MODEL,
        "JOB_SOURCE": JOB,
    }
    try:
        out = subprocess.run(
            [sys.executable, str(script), str(workspace), str(root)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=240,
        )
    finally:
        daemon.shutdown(workspace)  # should the client have failed before it stopped its daemon
    log = workspace / "daemon.log"
    assert out.returncode == 0, out.stderr[-3000:] + (log.read_text()[-3000:] if log.exists() else "")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert not attempts.exists(), attempts.read_text()  # neither the client nor the daemon tried
    assert result["library"] == []
    assert result["answer"]["success"] is True
    assert result["answer"]["response"]["prediction"] == {"y": 42, "library": []}  # nor the replica
    assert result["run"] == "ENGINE_SUCCEEDED", result["log"]  # nor the job engine
    [record] = result["records"]
    assert record["predictionUuid"] == result["answer"]["response"]["uuid"]
    assert record["metrics"] == {"input_features": {"x": 21}, "prediction": 42, "final_label": 42}
