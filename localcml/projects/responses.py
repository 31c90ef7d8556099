"""API v2 handlers of the projects service: create, list, get, update, delete, collaborators, key validation."""

from __future__ import annotations

import json
from collections.abc import Callable

from localcml.core.bodies import env_map
from localcml.core.errors import invalid
from localcml.core.paging import USER_FILTER, list_page
from localcml.core.state import CALLER_RUN, public
from localcml.projects import exceptions
from localcml.projects.backend import Projects

PROJECT_FILTER = (*USER_FILTER, "description", "name", "owner.email", "owner.name", "owner.username")
PROJECT_SORT = (*PROJECT_FILTER, "created_at", "updated_at")
#: Fields of a Project that update_project changes (the rest are output only).
UPDATABLE = ("name", "description", "visibility", "environment", "shared_memory_limit", "default_engine_type")


class ProjectsApi:
    """Handlers ``handler(path, query, body) -> response dict`` for projects.

    Args:
        projects: the projects and their directories.
        cascade: stops and removes what a project holds (runs, deployments, applications) before it goes.
    """

    def __init__(self, projects: Projects, cascade: Callable[[str], None]):
        self.projects = projects
        self.state = projects.state
        self.cascade = cascade

    def create_project(self, path: dict, query: dict, body: dict) -> dict:
        return public(self.projects.create(body))

    def list_projects(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page(self.state.list("project"), query, filter_keys=PROJECT_FILTER, sort_keys=PROJECT_SORT)
        return {"projects": [public(p) for p in page], "next_page_token": token}

    def list_project_names(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page(self.state.list("project"), query, filter_keys=PROJECT_FILTER, sort_keys=PROJECT_SORT)
        return {"project_names": [p["name"] for p in page], "next_page_token": token}

    def get_project(self, path: dict, query: dict, body: None) -> dict:
        return public(self.state.require("project", path["project_id"]))

    def update_project(self, path: dict, query: dict, body: dict) -> dict:
        project_id = path["project.id"]
        self.state.require("project", project_id)
        if body.get("id") and body["id"] != project_id:
            raise invalid(f"Project.id {body['id']!r} in the body differs from the path's {project_id!r}")
        changes = {k: v for k, v in body.items() if k in UPDATABLE and v not in (None, "")}
        if "environment" in changes:
            changes["environment"] = json.dumps(env_map(changes["environment"], "Project.environment"))
        if "name" in changes and any(
            p["name"] == changes["name"] and p["id"] != project_id for p in self.state.list("project")
        ):
            raise exceptions.project_exists(changes["name"])

        def change(project: dict) -> None:
            project.update(changes)
            project["updated_at"] = self.state.now()

        return public(self.state.update("project", project_id, change))

    def delete_project(self, path: dict, query: dict, body: None) -> dict:
        project = self.state.require("project", path["project_id"])
        if project.get("_own"):
            raise exceptions.own_project(project["id"])
        self.cascade(project["id"])
        self.projects.delete(project["id"])
        return {}

    def list_project_collaborators(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("project", path["project_id"])
        return {"collaborators": [], "next_page_token": ""}  # one user, who owns every project

    def validate_api_key(self, path: dict, query: dict, body: dict) -> dict:
        audience = body.get("audience") or "API"
        if audience not in ("API", "Application"):
            return {"valid": False, "username": "", "message": f"unknown audience {audience!r}"}
        user = self.projects.user["username"]
        engine = CALLER_RUN.get()
        message = f"valid API key of {user}" + (f" (the engine of job run {engine})" if engine else "")
        return {"valid": True, "username": user, "message": message}
