"""Projects: their records and their directories (the workspace's own project is its project root).

Every project has its own directory: the workspace's own project uses the project root it was
started on; a project created through the API gets ``W/projects/<id>/``: empty (template
``local`` or ``blank``, the default), the starter files of a built-in template (``Python``,
``R``, ``PySpark``, ``Scala``: see ``templates``), a ``git clone`` of ``git_url`` (template
``git``), or a copy of ``parent_project`` (a fork). Jobs, models and applications belong to one project and run in
its directory with its engine variables (``CDSW_PROJECT_ID``, ``CDSW_PROJECT``,
``PROJECT_OWNER``, ...) and its environment.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from localcml.core.bodies import env_map
from localcml.core.errors import invalid
from localcml.core.state import ApiState, public_id
from localcml.projects import exceptions, templates
from localcml.projects.files import snapshot

GIT_TIMEOUT_SECONDS = 300.0
PERMISSIONS = {"read": True, "write": True, "admin": True, "business_user": False, "operator": False, "inherit": False}


class Projects:
    """The projects of one workspace and where their files live.

    Args:
        state: the API state.
        workspace_dir: W (API-created projects live in ``W/projects/<id>/``).
        own_root: the workspace's own project's files.
        user: the local user (owner and creator of every project).
    """

    def __init__(self, state: ApiState, workspace_dir: Path, own_root: Path, user: dict):
        self.state = state
        self.root = Path(workspace_dir) / "projects"
        self.own_root = Path(own_root)
        self.user = user

    def ensure_own(self, name: str, description: str) -> dict:
        """The workspace's own project (created on first start), whose files are the project root."""
        found = next((p for p in self.state.list("project") if p.get("_own")), None)
        if found is None:
            found = next((p for p in self.state.list("project") if p["name"] == name), None)
            if found is not None:  # made by an older workspace: mark it as the workspace's own
                found = self.state.update("project", found["id"], lambda p: p.update(_own=True, _dir=""))
        if found is None:
            found = self.create({"name": name, "description": description}, own=True)
        return found

    def create(self, body: dict, own: bool = False) -> dict:
        """Store a project and lay out its directory.

        Raises:
            ApiError: no name, a name in use, an unavailable template, a failed clone.
        """
        name = body.get("name") or ""
        if not name:
            raise invalid("CreateProjectRequest.name is required")
        if any(p["name"] == name for p in self.state.list("project")):
            raise exceptions.project_exists(name)
        ident, now = public_id(), self.state.now()
        environment = env_map(body.get("environment"), "CreateProjectRequest.environment")
        folder = self.own_root if own else self.root / ident
        if not own:
            self._lay_out(folder, body)
        project = {
            "id": ident,
            "name": name,
            "owner": self.user,
            "creator": self.user,
            "description": body.get("description", ""),
            "visibility": body.get("visibility") or "private",
            "default_engine_type": body.get("default_project_engine_type") or "ml_runtime",
            "created_at": now,
            "updated_at": now,
            "creation_status": "success",
            "permissions": dict(PERMISSIONS),
            "shared_memory_limit": body.get("shared_memory_limit") or 64,
            "environment": json.dumps(environment),
            "ephemeral_storage_request": 0,
            "ephemeral_storage_limit": 0,
            "slug": f"{self.user['username']}/{_slug(name)}",
            "_dir": "" if own else str(folder.resolve()),
            "_own": own,
        }
        return self.state.insert("project", "", project)

    def _lay_out(self, folder: Path, body: dict) -> None:
        parent = body.get("parent_project")
        made = "fork" if parent else templates.kind(body.get("template") or "", body.get("git_url") or "")
        self.root.mkdir(parents=True, exist_ok=True)
        if parent:
            snapshot(self.directory(parent), folder, skip=(self.root.parent,))
        elif made == templates.GIT:
            self._clone(folder, body.get("git_url") or "", body.get("git_ref") or "")
        elif made == "empty":
            folder.mkdir(parents=True)
        else:
            templates.lay_out(folder, made)

    @staticmethod
    def _clone(folder: Path, url: str, ref: str) -> None:
        if not url:
            raise invalid("CreateProjectRequest.git_url is required with template 'git'")
        argv = ["git", "clone", "--quiet", *(["--branch", ref] if ref else []), url, str(folder)]
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise exceptions.clone_failed(url, str(exc)) from None
        if done.returncode != 0:
            shutil.rmtree(folder, ignore_errors=True)
            raise exceptions.clone_failed(url, done.stderr.strip()[-500:])

    def directory(self, project_id: str) -> Path:
        """The project's files.

        Raises:
            ApiError: NOT_FOUND.
        """
        project = self.state.require("project", project_id)
        if project.get("_own") or not project.get("_dir"):  # wherever the workspace was started on it now
            return self.own_root
        return Path(project["_dir"])

    def environment(self, project_id: str) -> dict[str, str]:
        """The engine variables of the project's engines (before the job's and the run's own)."""
        project = self.state.require("project", project_id)
        return {
            **json.loads(project.get("environment") or "{}"),
            "CDSW_PROJECT_ID": project["id"],
            "CDSW_PROJECT": project["name"],
            "PROJECT_OWNER": project["owner"]["username"],
            "CDSW_CREATOR": self.user["username"],
        }

    def delete(self, project_id: str) -> None:
        """Remove a project's record and, unless it is the workspace's own, its directory.

        Raises:
            ApiError: NOT_FOUND, or FAILED_PRECONDITION for the workspace's own project.
        """
        project = self.state.require("project", project_id)
        if project.get("_own"):
            raise exceptions.own_project(project_id)
        self.state.delete("project", project_id)
        folder = Path(project["_dir"])
        if self.root.resolve() in folder.resolve().parents:
            shutil.rmtree(folder, ignore_errors=True)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "project"
