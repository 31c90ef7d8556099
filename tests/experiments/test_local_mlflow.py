"""The local workspace's experiments and registry: a real MLflow tracking server behind API v2.

One workspace serves the whole module (the server's first start migrates its SQLite store, which
takes tens of seconds on a small machine): a job trains with ``mlflow`` as CML engines do, then
API v2 reads, registers, builds and serves what it logged.
"""

from __future__ import annotations

import json

import pytest
import requests

from localcml.client.api import ApiException
from localcml.workspace import LocalWorkspace
from tests.experiments.lab_scripts import TRAIN
from tests.local.support import call, make_tree, wait_build, wait_deployment, wait_run

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    root = make_tree(tmp_path_factory.mktemp("mlflow") / "project")
    (root / "scripts" / "train.py").write_text(TRAIN)
    workspace = LocalWorkspace(root / ".cml-local", root, busy_timeout=5.0, health_timeout=120.0).start()
    yield workspace
    workspace.stop()


@pytest.fixture(scope="module")
def api(ws):
    return ws.client()


@pytest.fixture(scope="module")
def runtime_id(api):
    return api.list_runtimes().runtimes[0].image_identifier


@pytest.fixture(scope="module")
def trained(ws, api, runtime_id):
    """Two training runs of a job (the lab's training script), as API v2 lists them."""
    job = api.create_job(
        {"name": "train", "script": "scripts/train.py", "runtime_identifier": runtime_id}, ws.project_id
    )
    for seed in ("7", "8"):
        run = api.create_job_run({"environment": {"SEED": seed}}, ws.project_id, job.id)
        done = wait_run(api, ws.project_id, job.id, run.id, timeout=600)
        log = (ws.workspace_dir / "runs" / f"{run.id}.log").read_text() if done.status != "ENGINE_SUCCEEDED" else ""
        assert done.status == "ENGINE_SUCCEEDED", log[-3000:]
    owner = api.get_project(ws.project_id).owner.username
    exps = api.list_experiments(ws.project_id, search_filter=json.dumps({"name": f"xgb-telco-{owner}"})).experiments
    assert len(exps) == 1
    runs = api.list_experiment_runs(ws.project_id, exps[0].id, sort="start_time").experiment_runs
    return exps[0], runs


def test_engines_get_the_tracking_uri_and_api_v2_lists_what_mlflow_logged(ws, api, trained):
    experiment, runs = trained
    assert ws.engine_env()["MLFLOW_TRACKING_URI"] == f"{ws.url}/mlflow"
    assert len(runs) == 2 and {r.status for r in runs} == {"EXPERIMENT_RUN_FINISHED"}
    params = {p.key: p.value for p in runs[0].data.params}
    assert params["test_size"] == "0.3" and 0.5 < float(params["accuracy"]) <= 1.0
    history = api.get_experiment_run_metrics(ws.project_id, experiment.id, runs[0].id, "accuracy").metrics
    assert [m.value for m in history] == [float(params["accuracy"])]
    assert api.get_experiment(ws.project_id, experiment.id).project_id == ws.project_id
    assert experiment.id in {e.id for e in api.list_all_experiments().experiments}


def test_experiment_and_run_lifecycle_through_api_v2(ws, api):
    exp = api.create_experiment({"name": "manual", "tags": [{"key": "team", "value": "risk"}]}, ws.project_id)
    assert exp.project_id == ws.project_id and {"key": "team", "value": "risk"} in [t.to_dict() for t in exp.tags]
    run = api.create_experiment_run({"run_name": "r1"}, ws.project_id, exp.id)
    assert run.status == "EXPERIMENT_RUN_RUNNING"
    batch = {
        "metrics": [{"key": "auc", "value": 0.8, "step": "1"}, {"key": "auc", "value": 0.9, "step": "2"}],
        "params": [{"key": "rows", "value": "100"}],
        "tags": [{"key": "decision", "value": "d-1"}],
    }
    api.log_experiment_run_batch(batch, ws.project_id, exp.id, run.id)
    history = api.get_experiment_run_metrics(ws.project_id, exp.id, run.id, "auc").metrics
    assert [(m.value, m.step) for m in history] == [(0.8, "1"), (0.9, "2")]
    api.delete_experiment_run_batch({"tags": ["decision"]}, ws.project_id, exp.id, run.id)
    with pytest.raises(ApiException) as kept:
        api.delete_experiment_run_batch({"params": ["rows"]}, ws.project_id, exp.id, run.id)
    assert kept.value.status == 400 and "params" in kept.value.body
    done = api.update_experiment_run({"status": "EXPERIMENT_RUN_FINISHED"}, ws.project_id, exp.id, run.id)
    assert done.status == "EXPERIMENT_RUN_FINISHED" and done.end_time
    got = api.get_experiment_run(ws.project_id, exp.id, run.id)
    assert "decision" not in {t.key for t in got.data.tags} and {p.key for p in got.data.params} == {"rows"}
    api.update_experiment({"name": "manual-2"}, ws.project_id, exp.id)
    assert api.get_experiment(ws.project_id, exp.id).name == "manual-2"
    api.delete_experiment_run(ws.project_id, exp.id, run.id)
    api.delete_experiment(ws.project_id, exp.id)
    assert exp.id not in {e.id for e in api.list_experiments(ws.project_id, page_size=100).experiments}


def test_registry_versions_aliases_and_a_build_from_a_registered_version(ws, api, trained, runtime_id):
    experiment, runs = trained
    first = api.create_registered_model(
        {"experiment_id": experiment.id, "run_id": runs[0].id, "model_name": "tower", "model_path": "artifacts"}
    )
    second = api.create_registered_model(
        {"experiment_id": experiment.id, "run_id": runs[1].id, "model_name": "tower", "model_path": "artifacts"}
    )
    assert first.model_id == second.model_id
    assert [first.model_versions[0].number, second.model_versions[0].number] == [1, 2]
    v2 = second.model_versions[0]
    assert v2.model_version_metadata.mlflow_metadata.run_id == runs[1].id
    assert v2.model_version_metadata.mlflow_metadata.experiment_id == experiment.id
    api.update_registered_model_version(
        {
            "model_version_id": v2.model_version_id,
            "notes": "the champion",
            "tags": [{"key": "alias", "value": "champion"}],
        },
        first.model_id,
    )
    got = api.get_registered_model_version(first.model_id, v2.model_version_id)
    assert got.notes == "the champion" and {"key": "alias", "value": "champion"} in [t.to_dict() for t in got.tags]
    assert [m.name for m in api.list_registered_models().models] == ["tower"]
    assert api.get_registered_model(first.model_id).count == 2

    model = api.create_model(
        {"project_id": ws.project_id, "name": "tower", "registered_model_id": first.model_id}, ws.project_id
    )
    assert model.registered_model_id == first.model_id
    body = {"registered_model_version_id": v2.model_version_id, "runtime_identifier": runtime_id}
    build = wait_build(api, ws.project_id, model.id, api.create_model_build(body, ws.project_id, model.id).id, 300)
    assert build.status == "built" and build.registered_model_version_id == v2.model_version_id
    dep = api.create_model_deployment({"cpu": "1", "memory": "2"}, ws.project_id, model.id, build.id)
    assert wait_deployment(api, ws.project_id, model.id, build.id, dep.id, 300).status == "deployed"
    row = {"columns": [f"iot_signal_{i}" for i in range(1, 5)], "data": [[9.0, 9.0, 5.0, 5.0], [1.0, 1.0, 5.0, 5.0]]}
    answer = call(ws, model.access_key, {"dataframe_split": row})
    assert answer.status_code == 200, answer.text
    assert answer.json()["response"]["predictions"] == [1, 0]

    api.delete_registered_model_version(first.model_id, first.model_versions[0].model_version_id)
    with pytest.raises(ApiException) as gone:
        api.create_model_build(
            {**body, "registered_model_version_id": first.model_versions[0].model_version_id}, ws.project_id, model.id
        )
    assert gone.value.status == 404


def test_a_run_without_a_model_at_model_path_registers_nothing(ws, api, trained):
    experiment, runs = trained
    with pytest.raises(ApiException) as refused:
        api.create_registered_model(
            {"experiment_id": experiment.id, "run_id": runs[0].id, "model_name": "nothing", "model_path": "missing"}
        )
    assert refused.value.status == 400 and "model_path" in refused.value.body
    assert "nothing" not in [m.name for m in api.list_registered_models(page_size=100).models]


def test_tracking_down_answers_503_and_mlflow_needs_the_api_key(ws, api):
    ws.inject("tracking=503 x1")
    with pytest.raises(ApiException) as down:
        api.list_experiments(ws.project_id)
    assert down.value.status == 503 and "unavailable" in down.value.body
    assert api.list_experiments(ws.project_id) is not None
    url = f"{ws.url}/mlflow/api/2.0/mlflow/experiments/search"
    assert requests.post(url, json={"max_results": 1}, timeout=30).status_code == 401
    ok = requests.post(url, json={"max_results": 1}, headers={"authorization": f"Bearer {ws.api_key}"}, timeout=30)
    assert ok.status_code == 200 and "experiments" in ok.json()
