"""API v2 handlers for models, model builds and model deployments."""

from __future__ import annotations

import json
import secrets
import string

from localcml.core.bodies import env_map, project_path
from localcml.core.errors import invalid, precondition
from localcml.core.paging import USER_FILTER, list_page
from localcml.core.state import CALLER_RUN, ApiState, new_uuid, public
from localcml.models.builds import Builder
from localcml.models.deployments import Deployer
from localcml.runtimes.catalogue import Runtimes

MODEL_FILTER = ("auth_enabled", *USER_FILTER, "description", "name")
MODEL_SORT = (*MODEL_FILTER, "created_at", "updated_at")
BUILD_FILTER = ("comment", *USER_FILTER, "crn", "status")
BUILD_SORT = (*BUILD_FILTER, "built_at", "created_at", "updated_at")
#: Build statuses a deployment may be created for (pending and building ones: it waits for them).
DEPLOYABLE = ("pending", "building", "built")
#: Fields of a Model that update_model changes.
MODEL_UPDATABLE = ("name", "description", "visibility", "auth_enabled")
UNSUPPORTED = ("auto_build_model", "auto_deploy_model", "auto_build_config", "auto_deployment_config")
_KEY_CHARS = string.ascii_lowercase + string.digits


def access_key() -> str:
    """A model access key in CML's form: ``m`` and 31 lowercase letters and digits."""
    return "m" + "".join(secrets.choice(_KEY_CHARS) for _ in range(31))


class ModelsApi:
    """Handlers for models, builds and deployments: ``handler(path, query, body) -> response dict``."""

    def __init__(
        self, state: ApiState, builder: Builder, deployer: Deployer, runtimes: Runtimes, user: dict, registry=None
    ):
        self.registry = registry  # a RegistryApi: builds from registered versions (None: no registry)
        self.state = state
        self.builder = builder
        self.deployer = deployer
        self.runtimes = runtimes
        self.user = user

    @staticmethod
    def _same_ids(body: dict, path: dict, kind: str) -> None:
        for key in ("project_id", "model_id", "build_id"):
            if body.get(key) and key in path and body[key] != path[key]:
                raise invalid(f"{kind}.{key} {body[key]!r} differs from the path's {path[key]!r}")

    # -- models ------------------------------------------------------------------------------
    def create_model(self, path: dict, query: dict, body: dict) -> dict:
        project = self.state.require("project", path["project_id"])
        self._same_ids(body, path, "CreateModelRequest")
        if not body.get("name"):
            raise invalid("CreateModelRequest.name is required")
        for key in UNSUPPORTED:
            if body.get(key):
                raise invalid(
                    f"CreateModelRequest.{key} is not supported by the local workspace; "
                    "create the build and the deployment explicitly"
                )
        if body.get("registered_model_id"):
            self._registered(body["registered_model_id"])
        ident, now = new_uuid(), self.state.now()
        model = {
            "id": ident,
            "name": body["name"],
            "description": body.get("description", ""),
            "creator": self.user,
            "access_key": access_key(),
            "deletion_status": "",
            "created_at": now,
            "updated_at": now,
            "crn": self.state.crn(ident),
            "auth_enabled": not body.get("disable_authentication", False),
            "project": {
                "public_identifier": project["id"],
                "name": project["name"],
                "default_project_engine": project["default_engine_type"],
                "slug": project["slug"],
            },
            "registered_model_id": body.get("registered_model_id", ""),
            "visibility": body.get("visibility") or "private",
            "default_resources": {"cpu_millicores": "1000", "memory_mb": "2048", "nvidia_gpus": "0"},
            "default_replication_policy": {"type": "fixed", "num_replicas": "1"},
            "run_as": body.get("run_as", 0),
            "accelerator_label_id": "0",
            "resource_group_id": 0,
            "resource_profile_id": 0,
        }
        return public(self.state.insert("model", project["id"], model))

    def update_model(self, path: dict, query: dict, body: dict) -> dict:
        model_id = path["model.id"]
        self.state.require("model", model_id, path["project_id"])
        changes = {k: v for k, v in body.items() if k in MODEL_UPDATABLE and v not in (None, "")}

        def change(model: dict) -> None:
            model.update(changes)
            model["updated_at"] = self.state.now()

        return public(self.state.update("model", model_id, change))

    def delete_model(self, path: dict, query: dict, body: None) -> dict:
        model = self.state.require("model", path["model_id"], path["project_id"])
        for build in self.state.list("build", model["id"]):
            self._drop_build(build)
        self.state.delete("model", model["id"])
        return {}

    def _drop_build(self, build: dict) -> None:
        for dep in self.state.list("deployment", build["id"]):
            if dep["status"] not in ("stopped", "failed"):
                self.deployer.stop(dep["id"])
            self.state.delete("deployment", dep["id"])
        self.builder.forget(build["id"])
        self.state.delete("build", build["id"])

    def delete_model_build(self, path: dict, query: dict, body: None) -> dict:
        build = self._require_build(path)
        live = [d["id"] for d in self.state.list("deployment", build["id"]) if d["status"] not in ("stopped", "failed")]
        if live:
            raise precondition(
                f"model build {build['id']} has deployments that are not stopped: {live}; stop them first"
            )
        self._drop_build(build)
        return {}

    def list_models(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("project", path["project_id"])
        page, token = list_page(
            self.state.list("model", path["project_id"]), query, filter_keys=MODEL_FILTER, sort_keys=MODEL_SORT
        )
        return {"models": [public(m) for m in page], "next_page_token": token}

    def list_all_models(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page(self.state.list("model"), query, filter_keys=MODEL_FILTER)
        return {"models": [public(m) for m in page], "next_page_token": token}

    def get_model(self, path: dict, query: dict, body: None) -> dict:
        return public(self.state.require("model", path["model_id"], path["project_id"]))

    # -- builds ------------------------------------------------------------------------------
    def create_model_build(self, path: dict, query: dict, body: dict) -> dict:
        model = self.state.require("model", path["model_id"], path["project_id"])
        self._same_ids(body, path, "CreateModelBuildRequest")
        fill = None
        if body.get("registered_model_version_id") and not body.get("file_path"):
            body, fill = self._from_registry(model, body)
        for key in ("file_path", "function_name"):
            if not body.get(key):
                raise invalid(f"CreateModelBuildRequest.{key} is required (or registered_model_version_id)")
        project_path(body["file_path"], "CreateModelBuildRequest.file_path")
        if body.get("auto_deploy_model") or body.get("auto_deployment_config"):
            raise invalid(
                "CreateModelBuildRequest.auto_deploy_model is not supported by the local workspace; "
                "deploy the build with create_model_deployment once it is built"
            )
        self.runtimes.require(body.get("runtime_identifier"), "model build")
        ident, now = new_uuid(), self.state.now()
        build = {
            "id": ident,
            "model_id": model["id"],
            "creator": self.user,
            "comment": body.get("comment", ""),
            "file_path": body["file_path"],
            "function_name": body["function_name"],
            "engine_image": "",
            "kernel": body.get("kernel", ""),
            "created_at": now,
            "updated_at": now,
            "status": "pending",
            "deletion_status": "",
            "crn": self.state.crn(ident),
            "runtime_identifier": body["runtime_identifier"],
            "runtime_addon_identifiers": body.get("runtime_addon_identifiers", []),
            "registered_model_version_id": body.get("registered_model_version_id", ""),
            "model_root_dir": body.get("model_root_dir", ""),
            "build_script_path": body.get("build_script_path", ""),
            "_run_id": CALLER_RUN.get(),
            "_project_id": path["project_id"],
        }
        self.state.insert("build", model["id"], build)
        self.builder.start(build, path["project_id"], fill)
        return public(self.state.get("build", ident))

    def _registered(self, registered_model_id: str) -> None:
        if self.registry is None:
            raise invalid("CreateModelRequest.registered_model_id: the local workspace has no model registry")
        self.registry.get_registered_model({"model_id": registered_model_id}, {"page_size": "1"}, None)

    def _from_registry(self, model: dict, body: dict) -> tuple[dict, object]:
        """The build request completed for a registered version, and what fills its snapshot."""
        from localcml.registry.artifacts import SERVE_FILE, SERVE_FUNCTION, filler

        version_id = body["registered_model_version_id"]
        if self.registry is None:
            raise invalid(
                "CreateModelBuildRequest.registered_model_version_id: the local workspace has no model registry"
            )
        if model.get("registered_model_id") and not version_id.startswith(model["registered_model_id"] + "-v"):
            raise invalid(
                f"CreateModelBuildRequest.registered_model_version_id {version_id!r} is not a version of the "
                f"model's registered model {model['registered_model_id']!r}"
            )
        model_dir = self.registry.artifacts(version_id)
        return {**body, "file_path": SERVE_FILE, "function_name": SERVE_FUNCTION}, filler(model_dir, version_id)

    def list_model_builds(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("model", path["model_id"], path["project_id"])
        page, token = list_page(
            self.state.list("build", path["model_id"]), query, filter_keys=BUILD_FILTER, sort_keys=BUILD_SORT
        )
        return {"model_builds": [public(b) for b in page], "next_page_token": token}

    def get_model_build(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("model", path["model_id"], path["project_id"])
        return public(self.state.require("build", path["build_id"], path["model_id"], "model build"))

    # -- deployments -------------------------------------------------------------------------
    def _require_build(self, path: dict) -> dict:
        self.state.require("model", path["model_id"], path["project_id"])
        return self.state.require("build", path["build_id"], path["model_id"], "model build")

    def create_model_deployment(self, path: dict, query: dict, body: dict) -> dict:
        build = self._require_build(path)
        self._same_ids(body, path, "CreateModelDeploymentRequest")
        if build["status"] not in DEPLOYABLE:  # a build still building is waited for, as CML does
            raise precondition(f"model build {build['id']} is {build['status']!r}; only a built build can be deployed")
        replicas = int(body.get("replicas") or 1)
        if replicas < 1:
            raise invalid(f"CreateModelDeploymentRequest.replicas must be at least 1, got {replicas}")
        ident, now = new_uuid(), self.state.now()
        dep = {
            "project_id": path["project_id"],
            "model_id": path["model_id"],
            "build_id": build["id"],
            "id": ident,
            "cpu": body.get("cpu") or 1.0,
            "memory": body.get("memory") or 2.0,
            "nvidia_gpu": body.get("nvidia_gpus", 0),
            "environment": json.dumps(env_map(body.get("environment"), "CreateModelDeploymentRequest.environment")),
            "created_at": now,
            "updated_at": now,
            "crn": self.state.crn(ident),
            "deployer": self.user,
            "status": "pending",
            "replicas": replicas,
            "accelerator_label_id": "0",
            "resource_group_id": body.get("resource_group_id", 0),
            "resource_profile_id": body.get("resource_profile_id", 0),
            "_run_id": CALLER_RUN.get(),
            "_secrets": env_map(body.get("deployment_secrets"), "CreateModelDeploymentRequest.deployment_secrets"),
        }
        self.state.insert("deployment", build["id"], dep)
        self.deployer.start(ident)
        return public(self.state.get("deployment", ident))

    def list_model_deployments(self, path: dict, query: dict, body: None) -> dict:
        self._require_build(path)
        page, token = list_page(self.state.list("deployment", path["build_id"]), query, filter_keys=None)
        return {"model_deployments": [public(d) for d in page], "next_page_token": token}

    def _require_deployment(self, path: dict) -> dict:
        self._require_build(path)
        return self.state.require("deployment", path["deployment_id"], path["build_id"], "model deployment")

    def get_model_deployment(self, path: dict, query: dict, body: None) -> dict:
        return public(self._require_deployment(path))

    def stop_model_deployment(self, path: dict, query: dict, body: object) -> dict:
        self._require_deployment(path)
        return public(self.deployer.stop(path["deployment_id"]))

    def restart_model_deployment(self, path: dict, query: dict, body: object) -> dict:
        self._require_deployment(path)
        return public(self.deployer.restart(path["deployment_id"]))
