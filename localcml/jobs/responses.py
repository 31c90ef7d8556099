"""API v2 handlers of the jobs service: jobs and job runs, with the rules CML enforces."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from localcml.core.bodies import env_map, project_path
from localcml.core.errors import invalid
from localcml.core.paging import USER_FILTER, list_page
from localcml.core.state import ApiState, public, public_id
from localcml.jobs.runner import JobRunner
from localcml.jobs.schedules import check_schedule

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
    "paused",
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


def job_type(job: dict) -> str:
    """CML's Job.type: "cron" with a schedule, "dependent" with a parent, else "manual"."""
    return "cron" if job.get("schedule") else "dependent" if job.get("parent_id") else "manual"


#: Fields whose change restarts a job's schedule from now.
SCHEDULE_FIELDS = ("schedule", "timezone", "paused")


class JobsApi:
    """Handlers for jobs and runs: ``handler(path, query, body) -> response dict``.

    Args:
        state: the API state.
        runner: starts and stops runs.
        user: the local user (creator of every job).
        runtimes: the runtime catalogue (jobs must name a registered runtime).
        schedules_changed: called when a job's schedule changes (the scheduler looks again).
    """

    def __init__(
        self,
        state: ApiState,
        runner: JobRunner,
        user: dict,
        runtimes: Any,
        schedules_changed: Callable[[], None] = lambda: None,
    ):
        self.state = state
        self.runner = runner
        self.user = user
        self.runtimes = runtimes
        self.schedules_changed = schedules_changed

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
        if job.get("schedule"):
            check_schedule(job["schedule"], job.get("timezone") or DEFAULT_TIMEZONE)

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
        job["_schedule_since_ms"] = self.state.clock.now_ms()
        created = public(self.state.insert("job", project["id"], job))
        if job["schedule"]:
            self.schedules_changed()
        return created

    def list_all_jobs(self, path: dict, query: dict, body: None) -> dict:
        page, token = list_page(self.state.list("job"), query, filter_keys=JOB_FILTER, sort_keys=JOB_SORT)
        return {"jobs": [public(j) for j in page], "next_page_token": token}

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

        rescheduled = any(k in changes and changes[k] != current.get(k) for k in SCHEDULE_FIELDS)

        def change(job: dict) -> None:
            job.update(changes)
            job["type"] = job_type(job)
            job["updated_at"] = self.state.now()
            if rescheduled:
                job["_schedule_since_ms"] = self.state.clock.now_ms()

        updated = public(self.state.update("job", job_id, change))
        if rescheduled:
            self.schedules_changed()
        return updated

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
