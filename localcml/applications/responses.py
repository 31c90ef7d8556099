"""API v2 handlers of the applications service: create, list, get, update, restart, stop, delete."""

from __future__ import annotations

import json
import re

from localcml.applications import exceptions
from localcml.applications.backend import Applications
from localcml.core.bodies import env_map, project_path
from localcml.core.errors import invalid
from localcml.core.paging import USER_FILTER, list_page
from localcml.core.state import ApiState, public, public_id
from localcml.runtimes.catalogue import Runtimes

APP_FILTER = (*USER_FILTER, "description", "name", "script", "status", "subdomain", "kernel")
APP_SORT = (*APP_FILTER, "created_at", "updated_at")
#: Host names of the workspace's own services, so never an application's subdomain.
RESERVED = ("modelservice", "monitoring", "www", "api")
_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
#: Fields of an Application that update_application changes.
UPDATABLE = (
    "name",
    "description",
    "script",
    "subdomain",
    "cpu",
    "memory",
    "nvidia_gpu",
    "environment",
    "kernel",
    "bypass_authentication",
    "runtime_identifier",
    "runtime_addon_identifiers",
)


class ApplicationsApi:
    """Handlers ``handler(path, query, body) -> response dict`` for applications.

    Args:
        state: the API state.
        apps: the application processes.
        runtimes: the runtime catalogue.
        user: the local user.
    """

    def __init__(self, state: ApiState, apps: Applications, runtimes: Runtimes, user: dict):
        self.state = state
        self.apps = apps
        self.runtimes = runtimes
        self.user = user

    def _check(self, app: dict, project_id: str) -> None:
        if not app.get("name"):
            raise invalid("application name is required")
        project_path(app.get("script"), f"application {app['name']!r} script")
        sub = app.get("subdomain") or ""
        if not _SUBDOMAIN.match(sub):
            raise exceptions.bad_subdomain(sub)
        if sub in RESERVED:
            raise exceptions.reserved_subdomain(sub)
        if any(a["subdomain"] == sub and a["id"] != app.get("id") for a in self.state.list("application")):
            raise exceptions.subdomain_taken(sub)
        if app.get("kernel"):
            raise invalid(
                f"kernel {app['kernel']!r} must not be set: project {project_id} uses ML Runtimes "
                "(set runtime_identifier instead)"
            )
        self.runtimes.require(app.get("runtime_identifier"), "application")

    def create_application(self, path: dict, query: dict, body: dict) -> dict:
        project = self.state.require("project", path["project_id"])
        if body.get("project_id") and body["project_id"] != project["id"]:
            raise invalid(
                f"CreateApplicationRequest.project_id {body['project_id']!r} differs from the path's {project['id']!r}"
            )
        now = self.state.now()
        app = {
            "id": public_id(),
            "name": body.get("name", ""),
            "description": body.get("description", ""),
            "creator": self.user,
            "script": body.get("script", ""),
            "subdomain": body.get("subdomain", ""),
            "status": "APPLICATION_STARTING",
            "created_at": now,
            "updated_at": now,
            "kernel": body.get("kernel", ""),
            "cpu": body.get("cpu") or 1.0,
            "memory": body.get("memory") or 1.0,
            "nvidia_gpu": body.get("nvidia_gpu", 0),
            "bypass_authentication": bool(body.get("bypass_authentication", False)),
            "environment": json.dumps(env_map(body.get("environment"), "CreateApplicationRequest.environment")),
            "runtime_identifier": body.get("runtime_identifier", ""),
            "runtime_addon_identifiers": body.get("runtime_addon_identifiers", []),
            "run_as": body.get("run_as", 0),
            "cdv_app": bool(body.get("cdv_app", False)),
            "accelerator_label_id": body.get("accelerator_label_id") or "0",
            "resource_group_id": body.get("resource_group_id", 0),
            "resource_profile_id": body.get("resource_profile_id", 0),
            "_project_id": project["id"],
        }
        self._check(app, project["id"])
        self.state.insert("application", project["id"], app)
        return public(self.apps.start(app["id"]))

    def list_applications(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("project", path["project_id"])
        page, token = list_page(
            self.state.list("application", path["project_id"]), query, filter_keys=APP_FILTER, sort_keys=APP_SORT
        )
        return {"applications": [public(a) for a in page], "next_page_token": token}

    def get_application(self, path: dict, query: dict, body: None) -> dict:
        return public(self.state.require("application", path["application_id"], path["project_id"]))

    def update_application(self, path: dict, query: dict, body: dict) -> dict:
        app_id = path["application.id"]
        current = self.state.require("application", app_id, path["project_id"])
        changes = {k: v for k, v in body.items() if k in UPDATABLE and v is not None}
        if "environment" in changes:
            changes["environment"] = json.dumps(env_map(changes["environment"], "Application.environment"))
        self._check({**current, **changes}, path["project_id"])

        def change(app: dict) -> None:
            app.update(changes)
            app["updated_at"] = self.state.now()

        return public(self.state.update("application", app_id, change))

    def restart_application(self, path: dict, query: dict, body: object) -> dict:
        app = self.state.require("application", path["application_id"], path["project_id"])
        self.apps.stop(app["id"])
        return public(self.apps.start(app["id"]))

    def stop_application(self, path: dict, query: dict, body: object) -> dict:
        app = self.state.require("application", path["application_id"], path["project_id"])
        return public(self.apps.stop(app["id"]))

    def delete_application(self, path: dict, query: dict, body: None) -> dict:
        app = self.state.require("application", path["application_id"], path["project_id"])
        self.apps.stop(app["id"])
        self.state.delete("application", app["id"])
        return {}
