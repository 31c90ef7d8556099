"""API v2 handlers of the Model Registry, answered from the MLflow registry of the tracking server.

A registered model is MLflow's (keyed by name), so a version ``mlflow.register_model`` made in an
engine is the same version API v2 lists. API v2 ids are derived from it: ``model_id`` is
``rm-`` and 16 hex digits of the name's SHA-1, ``model_version_id`` is ``<model_id>-v<number>``.
Aliases (MLflow 3's replacement for stages) are set and shown as version tags whose key is
``alias`` (``{"key": "alias", "value": "champion"}`` moves the alias ``champion`` to the version).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlencode

from localcml.core.errors import ALREADY_EXISTS, ApiError, invalid, not_found
from localcml.core.paging import list_page
from localcml.experiments.responses import PAGE, pages, run_view, tags_of
from localcml.experiments.tracking import TrackingServer
from localcml.registry.artifacts import ModelSource

ALIAS_TAG = "alias"
VISIBILITY_TAG = "cml.visibility"
MODEL_FILTER = ("name", "description", "owner.username")
MODEL_SORT = ("name", "created_at", "updated_at")


def model_id_of(name: str) -> str:
    return "rm-" + hashlib.sha1(name.encode()).hexdigest()[:16]


def _time(ms: object) -> str | None:
    from localcml.core.state import rfc3339

    return rfc3339(int(ms)) if ms not in (None, "", 0, "0") else None


class RegistryApi:
    """Handlers of the registry: ``handler(path, query, body) -> response dict``."""

    def __init__(
        self, tracking: TrackingServer, own_project: Callable[[], str], workspace_url: Callable[[], str], user: dict
    ):
        self.tracking = tracking
        self.source = ModelSource(tracking)
        self.own_project = own_project
        self.workspace_url = workspace_url
        self.user = user

    # -- lookups -----------------------------------------------------------------------------
    def _models(self) -> list[dict]:
        def fetch(token: str | None) -> dict:
            query = {"max_results": PAGE, **({"page_token": token} if token else {})}
            return self.tracking.call("GET", "registered-models/search", query=urlencode(query))

        return list(pages(fetch, "registered_models"))

    def _model(self, model_id: str) -> dict:
        for model in self._models():
            if model_id_of(model["name"]) == model_id:
                return model
        raise not_found("registered model", model_id)

    def _versions(self, name: str) -> list[dict]:
        def fetch(token: str | None) -> dict:
            query = {"filter": f"name='{name}'", "max_results": 200, **({"page_token": token} if token else {})}
            return self.tracking.call("GET", "model-versions/search", query=urlencode(query))

        return sorted(pages(fetch, "model_versions"), key=lambda v: int(v["version"]))

    def version(self, model_version_id: str) -> dict:
        """The MLflow version of an API v2 ``model_version_id``.

        Raises:
            ApiError: 404 when it does not name a version (deleted, or never registered).
        """
        model_id, sep, number = model_version_id.rpartition("-v")
        if not sep or not number.isdigit():
            raise not_found("registered model version", model_version_id)
        name = self._model(model_id)["name"]
        try:
            query = urlencode({"name": name, "version": number})
            return self.tracking.call("GET", "model-versions/get", query=query)["model_version"]
        except ApiError as exc:
            if exc.code == 5:
                raise not_found("registered model version", model_version_id) from None
            raise

    def artifacts(self, model_version_id: str) -> Path:
        """The directory of a registered version's MLflow model (what a build from it serves)."""
        version = self.version(model_version_id)
        return self.source.directory(version["source"], f"registered model version {model_version_id}")

    # -- views -------------------------------------------------------------------------------
    def _details(self, model: dict) -> dict:
        tags = {t["key"]: t.get("value", "") for t in model.get("tags", [])}
        return {
            "model_id": model_id_of(model["name"]),
            "name": model["name"],
            "description": model.get("description", ""),
            "owner": self.user,
            "permission": "OWNER",
            "visibility": tags.get(VISIBILITY_TAG, "PRIVATE"),
            "created_at": _time(model.get("creation_timestamp")),
            "updated_at": _time(model.get("last_updated_timestamp")),
            "count": len(self._versions(model["name"])),
        }

    def _version_view(self, version: dict, aliases: dict[str, str]) -> dict:
        model_id = model_id_of(version["name"])
        tags = [{"key": t["key"], "value": t.get("value", "")} for t in version.get("tags", [])]
        tags += [{"key": ALIAS_TAG, "value": a} for a, v in sorted(aliases.items()) if v == version["version"]]
        metadata = {"experiment_id": "", "run_id": version.get("run_id", ""), "metrics": [], "params": [], "tags": []}
        if version.get("run_id"):
            try:
                run = run_view(
                    self.tracking.call("GET", "runs/get", query=urlencode({"run_id": version["run_id"]}))["run"],
                    self.user,
                )
                metadata.update(
                    {k: run["data"][k] for k in ("metrics", "params", "tags")}, experiment_id=run["experiment_id"]
                )
            except ApiError as exc:
                if exc.code != 5:
                    raise
        return {
            "model_id": model_id,
            "model_version_id": f"{model_id}-v{version['version']}",
            "version_name": f"v{version['version']}",
            "number": int(version["version"]),
            "notes": version.get("description", ""),
            "user": self.user,
            "created_at": _time(version.get("creation_timestamp")),
            "updated_at": _time(version.get("last_updated_timestamp")),
            "status": version.get("status", ""),
            "model_version_metadata": {
                "mlops_type": "MLFLOW",
                "tags": tags,
                "workspace_url": self.workspace_url(),
                "project_id": self.own_project(),
                "owner": self.user,
                "mlflow_metadata": metadata,
            },
            "tags": tags,
            "error_message": "",
        }

    def _full(self, model: dict, versions: list[dict] | None = None) -> dict:
        aliases = {a["alias"]: a["version"] for a in model.get("aliases", [])}
        chosen = self._versions(model["name"]) if versions is None else versions
        return {
            **self._details(model),
            "model_versions": [self._version_view(v, aliases) for v in chosen],
            "next_page_token": "",
        }

    def _fresh(self, name: str) -> dict:
        return self.tracking.call("GET", "registered-models/get", query=urlencode({"name": name}))["registered_model"]

    # -- handlers ----------------------------------------------------------------------------
    def create_registered_model(self, path: dict, query: dict, body: dict) -> dict:
        for key in ("model_name", "run_id", "model_path"):
            if not body.get(key):
                raise invalid(f"CreateRegisteredModelRequest.{key} is required")
        run = self.tracking.call("GET", "runs/get", query=urlencode({"run_id": body["run_id"]}))["run"]["info"]
        if body.get("experiment_id") and str(body["experiment_id"]) != run["experiment_id"]:
            raise invalid(
                f"CreateRegisteredModelRequest.run_id {body['run_id']!r} is not a run of experiment {body['experiment_id']!r}"
            )
        source = f"runs:/{body['run_id']}/{body['model_path'].strip('/')}"
        self.source.directory(source, "CreateRegisteredModelRequest.model_path")  # refuse before registering anything
        tags = [{"key": VISIBILITY_TAG, "value": body.get("visibility") or "PRIVATE"}]
        try:
            self.tracking.call(
                "POST",
                "registered-models/create",
                {"name": body["model_name"], "description": body.get("description", ""), "tags": tags},
            )
        except ApiError as exc:
            if exc.code != ALREADY_EXISTS:
                raise
        payload = {
            "name": body["model_name"],
            "source": source,
            "run_id": body["run_id"],
            "tags": tags_of(body.get("tags")),
            "description": body.get("notes", ""),
        }
        version = self.tracking.call("POST", "model-versions/create", payload)["model_version"]
        return self._full(self._fresh(body["model_name"]), [version])

    def list_registered_models(self, path: dict, query: dict, body: None) -> dict:
        models = [self._details(m) for m in self._models()]
        page, token = list_page(models, query, filter_keys=MODEL_FILTER, sort_keys=MODEL_SORT)
        return {"models": page, "next_page_token": token}

    def get_registered_model(self, path: dict, query: dict, body: None) -> dict:
        model = self._model(path["model_id"])
        full = self._full(model)
        page, token = list_page(full["model_versions"], query, filter_keys=None, sort_keys=("number", "created_at"))
        return {**full, "model_versions": page, "next_page_token": token}

    def update_registered_model(self, path: dict, query: dict, body: dict) -> dict:
        model = self._model(body.get("model_id") or "")
        if body.get("description") is not None:
            self.tracking.call(
                "PATCH", "registered-models/update", {"name": model["name"], "description": body["description"]}
            )
        if body.get("visibility"):
            self.tracking.call(
                "POST",
                "registered-models/set-tag",
                {"name": model["name"], "key": VISIBILITY_TAG, "value": body["visibility"]},
            )
        return self._full(self._fresh(model["name"]))

    def delete_registered_model(self, path: dict, query: dict, body: None) -> dict:
        model = self._model(path["model_id"])
        self.tracking.call("DELETE", "registered-models/delete", {"name": model["name"]})
        return {}

    def get_registered_model_version(self, path: dict, query: dict, body: None) -> dict:
        version = self.version(path["version_id"])
        if model_id_of(version["name"]) != path["model_id"]:
            raise not_found("registered model version", path["version_id"])
        return self._version_view(
            version, {a["alias"]: a["version"] for a in self._fresh(version["name"]).get("aliases", [])}
        )

    def update_registered_model_version(self, path: dict, query: dict, body: dict) -> dict:
        version = self.version(body.get("model_version_id") or "")
        name, number = version["name"], version["version"]
        if model_id_of(name) != path["model_id"]:
            raise invalid(
                f"UpdateRegisteredModelVersionRequest.model_version_id is not a version of {path['model_id']!r}"
            )
        if body.get("notes") is not None:
            self.tracking.call(
                "PATCH", "model-versions/update", {"name": name, "version": number, "description": body["notes"]}
            )
        for tag in tags_of(body.get("tags")):
            if tag["key"] == ALIAS_TAG:
                self.tracking.call(
                    "POST", "registered-models/alias", {"name": name, "alias": tag["value"], "version": number}
                )
            else:
                self.tracking.call("POST", "model-versions/set-tag", {"name": name, "version": number, **tag})
        return self.get_registered_model_version(
            {"model_id": path["model_id"], "version_id": body["model_version_id"]}, {}, None
        )

    def delete_registered_model_version(self, path: dict, query: dict, body: None) -> dict:
        version = self.get_registered_model_version(path, query, body)
        name = self._model(path["model_id"])["name"]
        self.tracking.call("DELETE", "model-versions/delete", {"name": name, "version": str(version["number"])})
        return {}
