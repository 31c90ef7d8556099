"""API v2 handlers for experiments and their runs, answered from the MLflow tracking server.

Ids are MLflow's own (an experiment id, a run id), so what an engine logs with ``mlflow`` and what
API v2 lists are the same objects. MLflow has no projects: an experiment created through API v2
carries the tag ``cml.project_id``; one without it (made by ``mlflow.set_experiment`` in an
engine) belongs to the workspace's own project.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from localcml.core.errors import invalid, not_found
from localcml.core.paging import list_page
from localcml.core.state import ApiState, rfc3339
from localcml.experiments.tracking import TrackingServer

PROJECT_TAG = "cml.project_id"
EXPERIMENT_SORT = ("name", "created_at", "updated_at")
RUN_SORT = ("name", "start_time", "end_time", "status")
PAGE = 1000


def tags_of(pairs: list[dict] | None) -> list[dict]:
    """``[{key, value}]`` of API v2 (``Tag``) as MLflow's tag list (keys required)."""
    out = []
    for index, tag in enumerate(pairs or []):
        if not tag.get("key"):
            raise invalid(f"tags[{index}].key is required")
        out.append({"key": str(tag["key"]), "value": str(tag.get("value", ""))})
    return out


def ms_of(text: str | None, what: str) -> int | None:
    """Milliseconds of an RFC 3339 time (or of a number of ms given as a string)."""
    if not text:
        return None
    if str(text).isdigit():
        return int(text)
    try:
        return int(datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        raise invalid(f"{what} {text!r} is not an RFC 3339 time") from None


def _time(ms: Any) -> str | None:
    return rfc3339(int(ms)) if ms not in (None, "", 0, "0") else None


def pages(fetch: Callable[[str | None], dict], key: str) -> Iterator[dict]:
    """Every item of a paged MLflow search (``fetch(page_token) -> answer``)."""
    token: str | None = None
    while True:
        answer = fetch(token)
        yield from answer.get(key, [])
        token = answer.get("next_page_token")
        if not token:
            return


def run_view(run: dict, user: dict) -> dict:
    """An MLflow run as API v2's ``ExperimentRun``."""
    info, data = run.get("info", {}), run.get("data", {})
    metrics = [
        {"key": m["key"], "value": m["value"], "timestamp": _time(m.get("timestamp")), "step": str(m.get("step", 0))}
        for m in data.get("metrics", [])
    ]
    return {
        "id": info["run_id"],
        "name": info.get("run_name", ""),
        "experiment_id": info["experiment_id"],
        "user": user,
        "status": f"EXPERIMENT_RUN_{info.get('status', 'RUNNING')}",
        "start_time": _time(info.get("start_time")),
        "end_time": _time(info.get("end_time")),
        "artifact_uri": info.get("artifact_uri", ""),
        "data": {
            "metrics": metrics,
            "params": data.get("params", []),
            "tags": data.get("tags", []),
            "files": [],
            "registered_model_metadata": [],
        },
        "inputs": {"dataset_inputs": []},
    }


class ExperimentsApi:
    """Handlers for experiments and runs: ``handler(path, query, body) -> response dict``."""

    def __init__(self, state: ApiState, tracking: TrackingServer, own_project: Callable[[], str], user: dict):
        self.state = state
        self.tracking = tracking
        self.own_project = own_project
        self.user = user

    # -- experiments -------------------------------------------------------------------------
    def _view(self, exp: dict) -> dict:
        tags = {t["key"]: t.get("value", "") for t in exp.get("tags", [])}
        return {
            "id": exp["experiment_id"],
            "project_id": tags.get(PROJECT_TAG) or self.own_project(),
            "name": exp["name"],
            "artifact_location": exp.get("artifact_location", ""),
            "created_at": _time(exp.get("creation_time")),
            "updated_at": _time(exp.get("last_update_time")),
            "tags": [{"key": k, "value": v} for k, v in tags.items() if k != PROJECT_TAG],
            "lifecycle_stage": exp.get("lifecycle_stage", "active"),
            "user": self.user,
        }

    def _experiment(self, project_id: str, experiment_id: str) -> dict:
        exp = self._view(
            self.tracking.call("GET", "experiments/get", query=urlencode({"experiment_id": experiment_id}))[
                "experiment"
            ]
        )
        if exp["project_id"] != project_id:
            raise not_found("experiment", experiment_id)
        return exp

    def _all(self) -> list[dict]:
        def fetch(token: str | None) -> dict:
            return self.tracking.call(
                "POST", "experiments/search", {"max_results": PAGE, "view_type": "ACTIVE_ONLY", "page_token": token}
            )

        return [self._view(e) for e in pages(fetch, "experiments")]

    def create_experiment(self, path: dict, query: dict, body: dict) -> dict:
        project = self.state.require("project", path["project_id"])
        if not body.get("name"):
            raise invalid("CreateExperimentRequest.name is required")
        payload: dict[str, Any] = {
            "name": body["name"],
            "tags": [*tags_of(body.get("tags")), {"key": PROJECT_TAG, "value": project["id"]}],
        }
        if body.get("artifact_location"):
            payload["artifact_location"] = body["artifact_location"]
        created = self.tracking.call("POST", "experiments/create", payload)
        return self._experiment(project["id"], created["experiment_id"])

    def list_experiments(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("project", path["project_id"])
        mine = [e for e in self._all() if e["project_id"] == path["project_id"]]
        page, token = list_page(mine, query, filter_keys=None, sort_keys=EXPERIMENT_SORT)
        return {"experiments": page, "next_page_token": token}

    def list_all_experiments(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page(self._all(), query, filter_keys=None)
        return {"experiments": page, "next_page_token": token}

    def get_experiment(self, path: dict, query: dict, body: None) -> dict:
        return self._experiment(path["project_id"], path["experiment_id"])

    def update_experiment(self, path: dict, query: dict, body: dict) -> dict:
        exp = self._experiment(path["experiment.project_id"], path["experiment.id"])
        if body.get("name") and body["name"] != exp["name"]:
            self.tracking.call("POST", "experiments/update", {"experiment_id": exp["id"], "new_name": body["name"]})
        for tag in tags_of(body.get("tags")):
            self.tracking.call("POST", "experiments/set-experiment-tag", {"experiment_id": exp["id"], **tag})
        return self._experiment(exp["project_id"], exp["id"])

    def delete_experiment(self, path: dict, query: dict, body: None) -> dict:
        exp = self._experiment(path["project_id"], path["experiment_id"])
        self.tracking.call("POST", "experiments/delete", {"experiment_id": exp["id"]})
        return {}

    # -- runs --------------------------------------------------------------------------------
    def _run(self, path: dict, run_id: str) -> dict:
        exp = self._experiment(path["project_id"], path["experiment_id"])
        run = self.tracking.call("GET", "runs/get", query=urlencode({"run_id": run_id}))["run"]
        if run["info"]["experiment_id"] != exp["id"]:
            raise not_found("experiment run", run_id)
        return run

    def create_experiment_run(self, path: dict, query: dict, body: dict) -> dict:
        exp = self._experiment(path["project_id"], path["experiment_id"])
        payload: dict[str, Any] = {
            "experiment_id": exp["id"],
            "start_time": ms_of(body.get("start_time"), "CreateExperimentRunRequest.start_time")
            or self.state.clock.now_ms(),
            "tags": tags_of(body.get("tags")),
        }
        if body.get("run_name"):
            payload["run_name"] = body["run_name"]
        return run_view(self.tracking.call("POST", "runs/create", payload)["run"], self.user)

    def list_experiment_runs(self, path: dict, query: dict, body: None) -> dict:
        exp = self._experiment(path["project_id"], path["experiment_id"])

        def fetch(token: str | None) -> dict:
            return self.tracking.call(
                "POST", "runs/search", {"experiment_ids": [exp["id"]], "max_results": PAGE, "page_token": token}
            )

        runs = [run_view(r, self.user) for r in pages(fetch, "runs")]
        page, token = list_page(runs, query, filter_keys=None, sort_keys=RUN_SORT)
        return {"experiment_runs": page, "next_page_token": token}

    def get_experiment_run(self, path: dict, query: dict, body: None) -> dict:
        return run_view(self._run(path, path["run_id"]), self.user)

    def update_experiment_run(self, path: dict, query: dict, body: dict) -> dict:
        run = self._run(path, path["run.id"])
        payload: dict[str, Any] = {"run_id": run["info"]["run_id"]}
        if body.get("name"):
            payload["run_name"] = body["name"]
        status = str(body.get("status") or "").removeprefix("EXPERIMENT_RUN_")
        if status:
            payload["status"] = status
            if status != "RUNNING":
                payload["end_time"] = ms_of(body.get("end_time"), "ExperimentRun.end_time") or self.state.clock.now_ms()
        self.tracking.call("POST", "runs/update", payload)
        return run_view(self._run(path, run["info"]["run_id"]), self.user)

    def delete_experiment_run(self, path: dict, query: dict, body: None) -> dict:
        run = self._run(path, path["run_id"])
        self.tracking.call("POST", "runs/delete", {"run_id": run["info"]["run_id"]})
        return {}

    def log_experiment_run_batch(self, path: dict, query: dict, body: dict) -> dict:
        run_id = self._run(path, path["run_id"])["info"]["run_id"]
        now = self.state.clock.now_ms()
        metrics = []
        for index, m in enumerate(body.get("metrics") or []):
            if not m.get("key") or m.get("value") is None:
                raise invalid(f"LogExperimentRunBatchRequest.metrics[{index}] needs a key and a value")
            stamp = ms_of(m.get("timestamp"), f"LogExperimentRunBatchRequest.metrics[{index}].timestamp")
            metrics.append(
                {
                    "key": m["key"],
                    "value": float(m["value"]),
                    "timestamp": stamp or now,
                    "step": int(m.get("step") or 0),
                }
            )
        payload = {
            "run_id": run_id,
            "metrics": metrics,
            "params": tags_of(body.get("params")),
            "tags": tags_of(body.get("tags")),
        }
        self.tracking.call("POST", "runs/log-batch", payload)
        if body.get("model_json"):
            self.tracking.call("POST", "runs/log-model", {"run_id": run_id, "model_json": body["model_json"]})
        return {}

    def delete_experiment_run_batch(self, path: dict, query: dict, body: dict) -> dict:
        run_id = self._run(path, path["run_id"])["info"]["run_id"]
        kept = [k for k in ("metrics", "params") if body.get(k)]
        if kept:
            raise invalid(
                f"DeleteExperimentRunBatchRequest.{kept[0]}: MLflow keeps a run's params and metrics; only tags can be deleted"
            )
        for key in body.get("tags") or []:
            self.tracking.call("POST", "runs/delete-tag", {"run_id": run_id, "key": key})
        return {}

    def get_experiment_run_metrics(self, path: dict, query: dict, body: None) -> dict:
        run_id = self._run(path, path["run_id"])["info"]["run_id"]
        answer = self.tracking.call(
            "GET", "metrics/get-history", query=urlencode({"run_id": run_id, "metric_key": path["metric_key"]})
        )
        metrics = [
            {
                "key": m["key"],
                "value": m["value"],
                "timestamp": _time(m.get("timestamp")),
                "step": str(m.get("step", 0)),
            }
            for m in answer.get("metrics", [])
        ]
        return {"metrics": metrics}
