"""Scripts a job runs in the local workspace, written from the public description of the lab's flow.

``train.py`` trains as the lab's training scripts do (an MLflow run in the experiment
``xgb-telco-<owner>``, the model logged under ``artifacts`` with a signature and an input
example); ``deploy.py`` deploys as its API deployment script does (``search_runs`` ... last row,
``create_registered_model`` from the run, ``create_model`` with ``registered_model_id``, a build
from ``registered_model_version_id``, a deployment with cpu and memory as strings). Neither sets a
tracking URI: the platform does. A scikit-learn classifier stands in for XGBoost (not a
dependency here); the calls around it are the lab's.
"""

TRAIN = """\
import os
import mlflow
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

USERNAME = os.environ["PROJECT_OWNER"]
mlflow.set_experiment("xgb-telco-" + USERNAME)
rng = np.random.default_rng(int(os.environ.get("SEED", "7")))
df = pd.DataFrame(rng.integers(1, 10, size=(300, 4)), columns=[f"iot_signal_{i}" for i in range(1, 5)]).astype(float)
df["cell_tower_failure"] = (df.iot_signal_1 + rng.normal(0, 1, 300) > 5).astype(int)
X_train, X_test, y_train, y_test = train_test_split(df.drop(columns="cell_tower_failure"), df.cell_tower_failure, test_size=0.3, random_state=1)
with mlflow.start_run():
    model = LogisticRegression().fit(X_train, y_train)
    accuracy = float((model.predict(X_test) == y_test).mean())
    mlflow.log_param("accuracy", accuracy)
    mlflow.log_param("test_size", 0.3)
    mlflow.log_metric("accuracy", accuracy)
    signature = mlflow.models.infer_signature(X_train, model.predict(X_train))
    mlflow.sklearn.log_model(model, artifact_path="artifacts", signature=signature, input_example=X_train.head(2))
print("trained", accuracy)
"""

DEPLOY = """\
import json, os, time
import cmlapi
import mlflow

USERNAME = os.environ["PROJECT_OWNER"]
client = cmlapi.default_client()
client.list_projects()
project_id = os.environ["CDSW_PROJECT_ID"]
experiment_id = mlflow.get_experiment_by_name("xgb-telco-" + USERNAME).experiment_id
runs = mlflow.search_runs(experiment_id, run_view_type=1)
experiment_id, run_id = runs.iloc[-1]["experiment_id"], runs.iloc[-1]["run_id"]
model_name = "CellTwrFail-CLF-" + USERNAME
registered = client.create_registered_model({
    "project_id": project_id, "experiment_id": experiment_id, "run_id": run_id,
    "model_name": model_name, "model_path": "artifacts"})
model_id = registered.model_id
model_version_id = registered.model_versions[0].model_version_id
existing = [m for m in client.list_models(project_id=project_id, async_req=True, page_size=50).get().to_dict()["models"] if m["name"] == model_name]
if existing:  # the redeployment: a new build of the existing model
    created_id = existing[0]["id"]
else:
    created_id = client.create_model({"project_id": project_id, "name": model_name, "description": "lab",
        "registered_model_id": model_id, "disable_authentication": True}, project_id).id
runtime = client.list_runtimes().runtimes[0].image_identifier
build = client.create_model_build({"registered_model_version_id": model_version_id, "runtime_identifier": runtime,
    "comment": "from the registry", "model_id": created_id, "cpu": 2, "mem": 4, "replicas": 1}, project_id, created_id)
deployment = client.create_model_deployment({"cpu": "2", "memory": "4"}, project_id, created_id, build.id)
with open(os.environ["LAB_OUT"], "w") as out:
    json.dump({"model_id": created_id, "build_id": build.id, "deployment_id": deployment.id,
               "registered_model_id": model_id, "model_version_id": model_version_id, "run_id": run_id}, out)
print("deployed", deployment.id)
"""
