"""The lab's lifecycle runs unchanged on the local workspace: train -> register -> build -> deploy -> redeploy.

The scripts (``tests/experiments/lab_scripts.py``) make the lab's calls as its training, API
deployment and API redeployment scripts make them, inside job engines whose ``mlflow`` and
``cmlapi`` need no configuration, as in CML.
"""

from __future__ import annotations

import json

import pytest

from localcml.workspace import LocalWorkspace
from tests.experiments.lab_scripts import DEPLOY, TRAIN
from tests.local.support import call, make_tree, wait_deployment, wait_run

pytestmark = pytest.mark.timeout(1200)


def _run(ws, api, job, **environment):
    run = api.create_job_run({"environment": environment}, ws.project_id, job.id)
    done = wait_run(api, ws.project_id, job.id, run.id, timeout=600)
    assert done.status == "ENGINE_SUCCEEDED", (ws.workspace_dir / "runs" / f"{run.id}.log").read_text()[-3000:]


def test_the_lab_flow_deploys_and_redeploys_registered_versions(tmp_path):
    root = make_tree(tmp_path / "project")
    (root / "train.py").write_text(TRAIN)
    (root / "deploy.py").write_text(DEPLOY)
    ws = LocalWorkspace(root / ".cml-local", root, busy_timeout=5.0, health_timeout=120.0).start()
    try:
        api = ws.client()
        runtime = api.list_runtimes().runtimes[0].image_identifier
        train = api.create_job({"name": "train", "script": "train.py", "runtime_identifier": runtime}, ws.project_id)
        deploy = api.create_job({"name": "deploy", "script": "deploy.py", "runtime_identifier": runtime}, ws.project_id)
        outputs = []
        for seed in ("7", "8"):  # 01 + 02, then the 04 retrain + 05 redeployment
            _run(ws, api, train, SEED=seed)
            out = tmp_path / f"lab-{seed}.json"
            _run(ws, api, deploy, LAB_OUT=str(out))
            outputs.append(json.loads(out.read_text()))
        first, second = outputs
        assert second["model_id"] == first["model_id"]  # the redeployment reuses the model (and its access key)
        # ``search_runs`` lists the newest run first, so the lab's ``.iloc[-1]`` takes the OLDEST run: its
        # redeployment registers the first training again (a second version of the same run), as it does in CML.
        assert second["run_id"] == first["run_id"] and second["registered_model_id"] == first["registered_model_id"]
        assert [v.split("-v")[-1] for v in (first["model_version_id"], second["model_version_id"])] == ["1", "2"]
        model_id = second["model_id"]
        dep = wait_deployment(api, ws.project_id, model_id, second["build_id"], second["deployment_id"], 300)
        assert dep.status == "deployed"
        build = api.get_model_build(ws.project_id, model_id, second["build_id"])
        assert build.registered_model_version_id == second["model_version_id"]
        version = api.get_registered_model_version(second["registered_model_id"], second["model_version_id"])
        assert version.model_version_metadata.mlflow_metadata.run_id == second["run_id"]
        model = api.get_model(ws.project_id, model_id)
        assert model.registered_model_id == first["registered_model_id"] and not model.auth_enabled
        row = {"columns": [f"iot_signal_{i}" for i in range(1, 5)], "data": [[9.0, 9.0, 5.0, 5.0]]}
        answer = call(ws, model.access_key, {"dataframe_split": row})
        assert answer.status_code == 200 and answer.json()["response"]["predictions"] == [1], answer.text
    finally:
        ws.stop()
