"""API v2 handlers for projects, jobs and job runs (the rules CML enforces, checked locally)."""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

from localcml.core.errors import ApiError, invalid
from localcml.core.paging import list_page
from localcml.core.state import ApiState, public, public_id
from localcml.jobs.runner import JobRunner

USER_FILTER = ("creator.email", "creator.name", "creator.username")
PROJECT_FILTER = (*USER_FILTER, "description", "name", "owner.email", "owner.name", "owner.username")
PROJECT_SORT = (*PROJECT_FILTER, "created_at", "updated_at")
JOB_FILTER = (*USER_FILTER, "description", "kernel", "name", "paused", "script", "type")
JOB_SORT = (*JOB_FILTER, "created_at", "updated_at")
RUN_FILTER = (*JOB_FILTER, "status")
DEFAULT_TIMEZONE = "America/Los_Angeles"
#: Fields of a Job that update_job may change (the rest are output only or fixed at creation).
UPDATABLE = (
    "name",
    "script",
    "cpu",
    "memory",
    "nvidia_gpu",
    "arguments",
    "kernel",
    "schedule",
    "parent_id",
    "timeout",
    "kill_on_timeout",
    "environment",
    "runtime_identifier",
    "runtime_addon_identifiers",
    "timezone",
    "recipients",
    "attachments",
    "success_recipients",
    "failure_recipients",
    "timeout_recipients",
    "stopped_recipients",
    "run_as",
    "retry_enabled",
    "max_retry",
    "retry_delay",
    "retry_for_script_failure",
    "retry_for_system_failure",
    "retry_for_timedout_runs",
    "retry_for_skipped_runs",
    "resource_group_id",
    "resource_profile_id",
    "accelerator_label_id",
)


def env_map(value: Any, where: str) -> dict[str, str]:
    """An environment given as a map (create requests) or a JSON string (update_job), as a dict.

    Raises:
        ApiError: INVALID_ARGUMENT when it is not a JSON object of strings.
    """
    if value in (None, ""):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise invalid(f"{where}: expected a JSON object of strings, got {value!r}") from None
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise invalid(f"{where}: expected a JSON object whose values are strings, got {value!r}")
    return dict(value)


def project_path(value: Any, where: str) -> str:
    """A file path inside the project: relative, without ``..`` parts.

    Raises:
        ApiError: INVALID_ARGUMENT naming the field and the path.
    """
    path = PurePosixPath(str(value or ""))
    if not value or path.is_absolute() or ".." in path.parts or "\\" in str(value) or "\0" in str(value):
        raise invalid(f"{where}: {value!r} must be a path inside the project (relative, without '..')")
    return str(value)


def job_type(job: dict) -> str:
    """CML's Job.type: "cron" with a schedule, "dependent" with a parent, else "manual"."""
    return "cron" if job.get("schedule") else "dependent" if job.get("parent_id") else "manual"


class JobsApi:
    """Handlers for projects, jobs and runs: ``handler(path, query, body) -> response dict``."""

    def __init__(self, state: ApiState, runner: JobRunner, user: dict, runtimes: Any):
        self.state = state
        self.runner = runner
        self.user = user
        self.runtimes = runtimes

    # -- projects ----------------------------------------------------------------------------
    def create_project(self, path: dict, query: dict, body: dict) -> dict:
        name = body.get("name") or ""
        if not name:
            raise invalid("CreateProjectRequest.name is required")
        if any(p["name"] == name for p in self.state.list("project")):
            raise ApiError(6, f"a project named {name!r} already exists")
        now = self.state.now()
        project = {
            "id": public_id(),
            "name": name,
            "owner": self.user,
            "creator": self.user,
            "description": body.get("description", ""),
            "visibility": body.get("visibility") or "private",
            "default_engine_type": "ml_runtime",
            "created_at": now,
            "updated_at": now,
            "creation_status": "success",
            "permissions": {
                "read": True,
                "write": True,
                "admin": True,
                "business_user": False,
                "operator": False,
                "inherit": False,
            },
            "shared_memory_limit": body.get("shared_memory_limit", 0),
            "environment": json.dumps(env_map(body.get("environment"), "CreateProjectRequest.environment")),
            "ephemeral_storage_request": 0,
            "ephemeral_storage_limit": 0,
            "slug": f"{self.user['username']}/{name}",
        }
        return public(self.state.insert("project", "", project))

    def list_projects(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page(self.state.list("project"), query, filter_keys=PROJECT_FILTER, sort_keys=PROJECT_SORT)
        return {"projects": [public(p) for p in page], "next_page_token": token}

    def get_project(self, path: dict, query: dict, body: None) -> dict:
        return public(self.state.require("project", path["project_id"]))

    # -- jobs --------------------------------------------------------------------------------
    def _check_parent(self, project_id: str, parent_id: str, job_id: str | None) -> None:
        seen = {job_id}
        current = parent_id
        while current:
            if current in seen:
                raise invalid(f"parent_id {parent_id!r} would make a dependency cycle")
            seen.add(current)
            parent = self.state.get("job", current)
            if parent is None or parent["project"]["public_identifier"] != project_id:
                raise invalid(f"parent_id {current!r}: no such job in project {project_id}")
            current = parent.get("parent_id")

    def _check_rules(self, job: dict, project_id: str) -> None:
        if job.get("schedule") and job.get("parent_id"):
            raise invalid(
                "a job cannot have both a schedule and a parent_id: schedule cannot be used in a "
                "dependency job (only the head of a dependency chain can be scheduled)"
            )
        if not job.get("name"):
            raise invalid("job name is required")
        if not job.get("script"):
            raise invalid("job script is required")
        project_path(job["script"], f"job {job['name']!r} script")
        if job.get("kernel"):
            raise invalid(
                f"kernel {job['kernel']!r} must not be set: project {project_id} uses ML Runtimes "
                "(set runtime_identifier instead)"
            )
        self.runtimes.require(job.get("runtime_identifier"), "job")
        if job.get("parent_id"):
            self._check_parent(project_id, job["parent_id"], job.get("id"))

    def create_job(self, path: dict, query: dict, body: dict) -> dict:
        project = self.state.require("project", path["project_id"])
        if body.get("project_id") and body["project_id"] != project["id"]:
            raise invalid(
                f"CreateJobRequest.project_id {body['project_id']!r} differs from the path's {project['id']!r}"
            )
        parent = body.get("parent_id") or body.get("parent_job_id") or ""
        if body.get("parent_id") and body.get("parent_job_id") and body["parent_id"] != body["parent_job_id"]:
            raise invalid("parent_id and parent_job_id (its deprecated alias) name different jobs")
        now = self.state.now()
        job = {
            "id": public_id(),
            "name": body.get("name", ""),
            "script": body.get("script", ""),
            "cpu": body.get("cpu") or 1.0,
            "memory": body.get("memory") or 1.0,
            "nvidia_gpu": body.get("nvidia_gpu", 0),
            "arguments": body.get("arguments", ""),
            "kernel": body.get("kernel", ""),
            "runtime_identifier": body.get("runtime_identifier", ""),
            "runtime_addon_identifiers": body.get("runtime_addon_identifiers", []),
            "schedule": body.get("schedule", ""),
            "english_schedule": "",
            "timezone": body.get("timezone") or DEFAULT_TIMEZONE,
            "paused": bool(body.get("paused", False)),
            "parent_id": parent,
            "timeout": str(int(body.get("timeout") or 0)),
            "kill_on_timeout": bool(body.get("kill_on_timeout", False)),
            "environment": json.dumps(env_map(body.get("environment"), "CreateJobRequest.environment")),
            "created_at": now,
            "updated_at": now,
            "creator": self.user,
            "owner": self.user,
            "project": {
                "public_identifier": project["id"],
                "name": project["name"],
                "default_project_engine": project["default_engine_type"],
                "slug": project["slug"],
            },
            "engine_image_id": "0",
            "run_as": body.get("run_as", 0),
            "accelerator_label_id": "0",
            "recipients": body.get("recipients", []),
            "attachments": body.get("attachments", []),
            **{
                k: body.get(k, "")
                for k in ("success_recipients", "failure_recipients", "timeout_recipients", "stopped_recipients")
            },
            **{
                k: body.get(k, False)
                for k in (
                    "retry_enabled",
                    "retry_for_script_failure",
                    "retry_for_system_failure",
                    "retry_for_timedout_runs",
                    "retry_for_skipped_runs",
                )
            },
            "max_retry": body.get("max_retry", 0),
            "retry_delay": body.get("retry_delay", 0),
            "resource_group_id": body.get("resource_group_id", 0),
            "resource_profile_id": body.get("resource_profile_id", 0),
        }
        self._check_rules(job, project["id"])
        job["type"] = job_type(job)
        return public(self.state.insert("job", project["id"], job))

    def list_jobs(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("project", path["project_id"])
        jobs = self.state.list("job", path["project_id"])
        page, token = list_page(jobs, query, filter_keys=JOB_FILTER, sort_keys=JOB_SORT)
        return {"jobs": [public(j) for j in page], "next_page_token": token}

    def get_job(self, path: dict, query: dict, body: None) -> dict:
        return public(self.state.require("job", path["job_id"], path["project_id"]))

    def update_job(self, path: dict, query: dict, body: dict) -> dict:
        job_id = path["job.id"]
        current = self.state.require("job", job_id, path["project_id"])
        if body.get("id") and body["id"] != job_id:
            raise invalid(f"Job.id {body['id']!r} in the body differs from the path's {job_id!r}")
        changes = {k: v for k, v in body.items() if k in UPDATABLE and v is not None}
        if "environment" in changes:
            changes["environment"] = json.dumps(env_map(changes["environment"], "Job.environment"))
        if "timeout" in changes:
            changes["timeout"] = str(int(changes["timeout"] or 0))
        merged = {**current, **changes}
        self._check_rules(merged, path["project_id"])

        def change(job: dict) -> None:
            job.update(changes)
            job["type"] = job_type(job)
            job["updated_at"] = self.state.now()

        return public(self.state.update("job", job_id, change))

    def delete_job(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("job", path["job_id"], path["project_id"])
        self.state.delete("job", path["job_id"])  # dependents stay, as in CML
        return {}

    # -- runs --------------------------------------------------------------------------------
    def create_job_run(self, path: dict, query: dict, body: dict) -> dict:
        job = self.state.require("job", path["job_id"], path["project_id"])
        for key in ("project_id", "job_id"):
            if body.get(key) and body[key] != path[key]:
                raise invalid(f"CreateJobRunRequest.{key} {body[key]!r} differs from the path's {path[key]!r}")
        env = env_map(body.get("environment"), "CreateJobRunRequest.environment")
        return self.runner.start(job, env, body.get("arguments"))

    def list_job_runs(self, path: dict, query: dict, body: None) -> dict:
        self.state.require("job", path["job_id"], path["project_id"])
        runs = self.state.list("run", path["job_id"])
        status = {"status": lambda r: r["status"].lower().removeprefix("engine_")}
        page, token = list_page(runs, query, filter_keys=RUN_FILTER, sort_keys=JOB_SORT, getters=status)
        return {"job_runs": [public(r) for r in page], "next_page_token": token}

    def get_job_run(self, path: dict, query: dict, body: None) -> dict:
        return public(self.state.require("run", path["run_id"], path["job_id"], "job run"))

    def stop_job_run(self, path: dict, query: dict, body: Any) -> dict:
        self.state.require("run", path["run_id"], path["job_id"], "job run")
        return self.runner.stop(path["run_id"])

    def handlers(self) -> dict:
        return {
            "CreateProject": self.create_project,
            "ListProjects": self.list_projects,
            "GetProject": self.get_project,
            "CreateJob": self.create_job,
            "ListJobs": self.list_jobs,
            "GetJob": self.get_job,
            "UpdateJob": self.update_job,
            "DeleteJob": self.delete_job,
            "CreateJobRun": self.create_job_run,
            "ListJobRuns": self.list_job_runs,
            "GetJobRun": self.get_job_run,
            "StopJobRun": self.stop_job_run,
        }
