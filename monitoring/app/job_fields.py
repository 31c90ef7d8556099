"""The fields of a CML job that ``graph apply`` manages, as it wants them and as a project has them.

Besides the job's own fields, two things a job needs in production: the config file it reads
(``CML_MONITOR_CONFIG`` in its environment, a path relative to the project root, so it survives
CML's job wrapper and a move to another project) and who CML emails when it fails or times out
(``recipients``: ``JobRecipient`` messages with ``notify_on_failure`` and ``notify_on_timeout``).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from monitoring.cmlclient.refs import RECIPIENT_FLAGS, JobRef
from monitoring.config.pipeline import CONFIG_ENV, JobSpec, PipelineConfig
from monitoring.core.errors import ConfigError
from monitoring.core.logs import KV
from monitoring.core.paths import project_path

log = logging.getLogger(__name__)

#: Environment marker on every job this tool manages; jobs without it are never touched.
MANAGED_ENV = "CML_MONITOR_MANAGED"
#: Variable names treated as secrets: never exported, never written into AMP metadata.
SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|passwd|credential|webhook)")
#: The job events alert emails are sent for (``JobRecipient`` flags set to true).
ALERT_EVENTS = ("failure", "timeout")


def is_secret(name: str, extra: Collection[str] = ()) -> bool:
    """Whether a variable's value must never leave the workspace (``extra``: names config marks secret)."""
    return name in extra or bool(SECRET_NAME.search(name))


def secret_names(cfg: PipelineConfig) -> frozenset[str]:
    """Variables the config names as secrets whatever they are called (the webhook URL's)."""
    return frozenset(n for n in (cfg.alerts.webhook.url_env,) if n)


def config_for_jobs(path: str | Path, project_root: str | Path) -> str:
    """``path`` as the jobs will find it: relative to the project root, with ``/`` separators.

    Raises:
        ConfigError: the file lies outside the project, where a job run cannot read it.
    """
    root = Path(project_root).resolve()
    full = Path(path).resolve()
    try:
        relative = full.relative_to(root).as_posix()
    except ValueError:
        raise ConfigError(
            f"config {path}: outside the project {root}; jobs read their config from the project, so put it there"
        ) from None
    return project_path(relative)


def public_environment(job_name: str, env: dict[str, str], secrets: Collection[str] = ()) -> dict[str, str]:
    """``env`` without the marker and without secret-like variables (each left out is logged by name)."""
    for name in sorted(n for n in env if is_secret(n, secrets)):
        log.warning("secret-like variable left out %s", KV(job=job_name, variable=name))
    return {k: v for k, v in sorted(env.items()) if k != MANAGED_ENV and not is_secret(k, secrets)}


# -- the state apply manages, on both sides --------------------------------------------------
def desired_state(
    spec: JobSpec,
    runtime: str,
    kept_env: dict[str, str] | None = None,
    *,
    config: str | None = None,
    alert_emails: Sequence[str] = (),
) -> dict[str, Any]:
    """The fields apply manages for ``spec``.

    Args:
        kept_env: secrets already on the job, kept.
        config: the config file the job reads; default the one its environment names, if any.
        alert_emails: who CML emails when the job fails or times out.
    """
    env = dict(spec.environment)
    config = config or env.pop(CONFIG_ENV, None) or None
    env.pop(CONFIG_ENV, None)
    return {
        "script": spec.script,
        "arguments": spec.arguments,
        "cpu": float(spec.cpu),
        "memory": float(spec.memory),
        "timeout": int(spec.timeout),
        "schedule": spec.schedule or "",
        "runtime_identifier": runtime,
        "environment": {**(kept_env or {}), **env, MANAGED_ENV: "true"},
        "config": config,
        "alert_emails": list(alert_emails),
        "parent": spec.parent,
    }


def current_state(job: JobRef, names_by_id: dict[str, str]) -> dict[str, Any]:
    """The same fields, of a job as the project has it.

    A recipient notified of other events than failure and timeout shows them (``a@b.c [success]``),
    so that apply sets it back to exactly what the config says.
    """
    env = dict(job.environment)
    config = env.pop(CONFIG_ENV, None) or None
    return {
        "script": job.script,
        "arguments": job.arguments,
        "cpu": job.cpu,
        "memory": job.memory,
        "timeout": job.timeout,
        "schedule": job.schedule,
        "runtime_identifier": job.runtime_identifier,
        "environment": env,
        "config": config,
        "alert_emails": [
            email if events == ALERT_EVENTS else f"{email} [{', '.join(events)}]"
            for email, events in job.recipients.items()
        ],
        "parent": names_by_id.get(job.parent_id, f"<job {job.parent_id}>") if job.parent_id else None,
    }


def _recipients(emails: Sequence[str]) -> list[dict[str, Any]]:
    """``JobRecipient`` messages: each address emailed on failure and on timeout, never otherwise."""
    return [{"email": e, **{flag: event in ALERT_EVENTS for event, flag in RECIPIENT_FLAGS.items()}} for e in emails]


def environment_of(state: dict[str, Any]) -> dict[str, str]:
    """The job's whole environment: its variables plus the config file it reads."""
    return {**state["environment"], **({CONFIG_ENV: state["config"]} if state["config"] else {})}


def create_body(project_id: str, name: str, state: dict[str, Any], ids: dict[str, str], timezone: str) -> dict:
    """A ``CreateJobRequest``: ``environment`` as a map; schedule (with timezone) or parent, never both."""
    body = {
        "project_id": project_id,
        "name": name,
        **{k: v for k, v in state.items() if k not in ("parent", "schedule", "config", "alert_emails")},
        "environment": environment_of(state),
        "recipients": _recipients(state["alert_emails"]),
    }
    if state["schedule"]:
        body.update(schedule=state["schedule"], timezone=timezone)
    if state["parent"]:
        body["parent_id"] = ids[state["parent"]]
    return body


def update_body(changes: dict[str, Any], desired: dict[str, Any], ids: dict[str, str]) -> dict:
    """A ``Job`` patch holding only the changed fields, in the types of the ``Job`` message.

    Args:
        changes: the fields that differ; ``desired``: every field as apply wants it.
    """
    body: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "parent":
            body["parent_id"] = ids[value] if value else ""
        elif key in ("environment", "config"):
            body["environment"] = json.dumps(environment_of(desired))  # a JSON string on update (CML quirk)
        elif key == "alert_emails":
            body["recipients"] = _recipients(value)
        elif key == "timeout":
            body["timeout"] = str(value)  # Job.timeout is an int64: a string in the Job message
        else:
            body[key] = value
    return body
