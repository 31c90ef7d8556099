"""Typed records of what CML API v2 answers: models, builds, deployments, jobs, job runs and applications.

Each record is built from the vendor object (a ``cmlapi`` model object, or a dict) by its ``of``
constructor, with the field names of the API v2 spec; nothing outside ``monitoring.cmlclient``
reads a vendor object. Statuses come in one case whatever casing the platform used, numbers
as numbers, and ``environment`` (a JSON string on responses, a map on requests) as a map.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from monitoring.core.logs import register_secret

#: Build statuses (lower case) that mean the build can be deployed, and those that mean it never will.
BUILD_OK = frozenset({"built", "succeeded"})
BUILD_FAILED = frozenset({"build failed", "failed", "timedout", "unknown"})
#: Job run statuses (upper case): finished one way or another, and still going.
RUN_TERMINAL = frozenset({"ENGINE_SUCCEEDED", "ENGINE_FAILED", "ENGINE_TIMEDOUT", "ENGINE_STOPPED", "ENGINE_SKIPPED"})
RUN_ACTIVE = frozenset({"ENGINE_SCHEDULING", "ENGINE_STARTING", "ENGINE_RUNNING", "ENGINE_STOPPING"})
RUN_SUCCEEDED = "ENGINE_SUCCEEDED"


def _field(obj: Any, name: str, default: Any = None) -> Any:
    """Read a response field from a vendor model object or a dict (``monitoring.cmlclient`` only)."""
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _text(obj: Any, name: str) -> str:
    value = _field(obj, name)
    return "" if value is None else str(value)


def _env_map(value: Any) -> dict[str, str]:
    """``environment`` arrives as a JSON string on responses (a map on requests): normalise it."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items()}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in parsed.items()} if isinstance(parsed, dict) else {}


#: ``JobRecipient`` flags, by the event name used for them here.
RECIPIENT_FLAGS = {
    "failure": "notify_on_failure",
    "timeout": "notify_on_timeout",
    "success": "notify_on_success",
    "stop": "notify_on_stop",
}


def _recipients(value: Any) -> dict[str, tuple[str, ...]]:
    """``Job.recipients`` as email -> the events it is notified of (proto3 JSON leaves false flags out)."""
    out: dict[str, tuple[str, ...]] = {}
    for item in value or []:
        email = _text(item, "email")
        if email:
            out[email] = tuple(event for event, flag in RECIPIENT_FLAGS.items() if _field(item, flag))
    return out


def _timestamp_ms(text: str) -> int | None:
    """An RFC 3339 ``created_at`` as epoch milliseconds (UTC when it names no zone); None if unreadable."""
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


@dataclass(frozen=True)
class ModelRef:
    """A ``Model``: the access key is registered as a secret (redacted from logs) when it is read."""

    id: str
    name: str
    crn: str
    access_key: str

    @classmethod
    def of(cls, model: Any) -> ModelRef:
        key = _text(model, "access_key")
        register_secret(key)
        return cls(_text(model, "id"), _text(model, "name"), _text(model, "crn"), key)


@dataclass(frozen=True)
class BuildRef:
    """A ``ModelBuild``; ``status`` in lower case."""

    id: str
    model_id: str
    crn: str
    status: str
    comment: str
    created_at: str
    registered_model_version_id: str = ""

    @classmethod
    def of(cls, build: Any) -> BuildRef:
        return cls(
            _text(build, "id"),
            _text(build, "model_id"),
            _text(build, "crn"),
            _text(build, "status").strip().lower(),
            _text(build, "comment"),
            _text(build, "created_at"),
            _text(build, "registered_model_version_id"),
        )

    @property
    def built(self) -> bool:
        return self.status in BUILD_OK

    @property
    def failed(self) -> bool:
        return self.status in BUILD_FAILED or "fail" in self.status


@dataclass(frozen=True)
class DeploymentRef:
    """A ``ModelDeployment``; ``status`` in lower case (``deployed`` is the live one)."""

    id: str
    crn: str
    build_id: str
    status: str
    created_at: str
    environment: dict[str, str]

    @classmethod
    def of(cls, deployment: Any, build_id: str) -> DeploymentRef:
        """From a ``ModelDeployment`` response; ``build_id`` when the response leaves it out."""
        return cls(
            _text(deployment, "id"),
            _text(deployment, "crn"),
            _text(deployment, "build_id") or build_id,
            _text(deployment, "status").strip().lower(),
            _text(deployment, "created_at"),
            _env_map(_field(deployment, "environment")),
        )

    @property
    def created_ms(self) -> int | None:
        """``created_at`` as epoch milliseconds; None when the platform sent none or an unreadable one."""
        return _timestamp_ms(self.created_at)


@dataclass(frozen=True)
class JobRef:
    """A ``Job``: ``timeout`` in seconds (an int64, so a string in the message); empty text for unset fields."""

    id: str
    name: str
    script: str
    arguments: str
    cpu: float
    memory: float
    timeout: int
    schedule: str
    timezone: str
    type: str
    parent_id: str
    runtime_identifier: str
    environment: dict[str, str]
    recipients: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Email -> the events CML notifies it of (``failure``, ``timeout``, ``success``, ``stop``)."""

    @classmethod
    def of(cls, job: Any) -> JobRef:
        return cls(
            id=_text(job, "id"),
            name=_text(job, "name"),
            script=_text(job, "script"),
            arguments=_text(job, "arguments"),
            cpu=float(_field(job, "cpu") or 0),
            memory=float(_field(job, "memory") or 0),
            timeout=int(_field(job, "timeout") or 0),
            schedule=_text(job, "schedule"),
            timezone=_text(job, "timezone"),
            type=_text(job, "type"),
            parent_id=_text(job, "parent_id"),
            runtime_identifier=_text(job, "runtime_identifier"),
            environment=_env_map(_field(job, "environment")),
            recipients=_recipients(_field(job, "recipients")),
        )


@dataclass(frozen=True)
class JobRunRef:
    """A ``JobRun``; ``status`` in upper case (``ENGINE_RUNNING``)."""

    id: str
    job_id: str
    status: str
    created_at: str
    environment: dict[str, str]

    @classmethod
    def of(cls, run: Any) -> JobRunRef:
        return cls(
            _text(run, "id"),
            _text(run, "job_id"),
            _text(run, "status").strip().upper(),
            _text(run, "created_at"),
            _env_map(_field(run, "environment")),
        )

    @property
    def created_ms(self) -> int | None:
        """``created_at`` as epoch milliseconds, or None when unreadable."""
        return _timestamp_ms(self.created_at)

    @property
    def finished(self) -> bool:
        return self.status in RUN_TERMINAL

    @property
    def active(self) -> bool:
        return self.status in RUN_ACTIVE

    @property
    def succeeded(self) -> bool:
        return self.status == RUN_SUCCEEDED


__all__ = [
    "ModelRef",
    "BuildRef",
    "DeploymentRef",
    "JobRef",
    "JobRunRef",
    "BUILD_OK",
    "BUILD_FAILED",
    "RUN_TERMINAL",
    "RUN_ACTIVE",
    "RUN_SUCCEEDED",
]


@dataclass(frozen=True)
class ApplicationRef:
    """An ``Application``; ``status`` in upper case (``APPLICATION_RUNNING``)."""

    id: str
    name: str
    subdomain: str
    script: str
    cpu: float
    memory: float
    status: str
    runtime_identifier: str
    bypass_authentication: bool
    environment: dict[str, str]

    @classmethod
    def of(cls, app: Any) -> ApplicationRef:
        return cls(
            id=_text(app, "id"),
            name=_text(app, "name"),
            subdomain=_text(app, "subdomain"),
            script=_text(app, "script"),
            cpu=float(_field(app, "cpu") or 0),
            memory=float(_field(app, "memory") or 0),
            status=_text(app, "status").upper(),
            runtime_identifier=_text(app, "runtime_identifier"),
            bypass_authentication=bool(_field(app, "bypass_authentication")),
            environment=_env_map(_field(app, "environment")),
        )

    @property
    def running(self) -> bool:
        return self.status == "APPLICATION_RUNNING"
