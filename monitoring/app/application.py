"""The dashboard's CML Application as ``graph apply`` manages it: plan, create, or update and restart.

Like the jobs, only an application carrying the ``CML_MONITOR_MANAGED`` marker is ever changed,
and it is found by name; one of that name or subdomain without the marker is refused. The
application never bypasses CML's authentication: CML's login stands in front of the dashboard.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

from monitoring.app.job_fields import MANAGED_ENV
from monitoring.cmlclient.api import CmlApi
from monitoring.cmlclient.refs import ApplicationRef
from monitoring.config.pipeline import CONFIG_ENV, PipelineConfig
from monitoring.core.errors import ConfigError
from monitoring.core.logs import KV

log = logging.getLogger(__name__)

#: The application fields apply manages (``environment`` holds the marker and the config file).
FIELDS = ("name", "subdomain", "script", "cpu", "memory", "runtime_identifier", "bypass_authentication", "environment")
DESCRIPTION = "cml-monitor: live monitoring dashboard (read-only view of the pipeline's state store)"


@dataclass(frozen=True)
class ApplicationChange:
    """What apply does to the dashboard application: ``create``, ``update`` (the fields that differ) or ``unchanged``."""

    name: str
    action: str
    changes: dict[str, Any] = field(default_factory=dict)
    application_id: str | None = None

    def line(self) -> str:
        """One line for people, as the jobs' lines read."""
        if self.action == "unchanged":
            return f"{self.action:9} application {self.name}"
        shown = {"subdomain": self.changes["subdomain"]} if self.action == "create" else self.changes
        return f"{self.action:9} application {self.name}  ({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


def app_name(cfg: PipelineConfig) -> str:
    """``dashboard.name``, else ``<model name> dashboard``."""
    return cfg.dashboard.name or f"{cfg.model.name} dashboard"


def app_subdomain(cfg: PipelineConfig) -> str:
    """``dashboard.subdomain``, else the model name as a host name label (lower case, ``-``, at most 63)."""
    if cfg.dashboard.subdomain:
        return cfg.dashboard.subdomain
    slug = re.sub(r"[^a-z0-9]+", "-", cfg.model.name.lower()).strip("-")[:63].strip("-")
    return slug or "cml-monitor"


def desired(cfg: PipelineConfig, runtime: str, config: str | None) -> dict[str, Any]:
    """The application's managed fields as the config wants them."""
    dash = cfg.dashboard
    env = {MANAGED_ENV: "true", **({CONFIG_ENV: config} if config else {})}
    return {
        "name": app_name(cfg),
        "subdomain": app_subdomain(cfg),
        "script": dash.script,
        "cpu": float(dash.cpu),
        "memory": float(dash.memory),
        "runtime_identifier": runtime,
        "bypass_authentication": False,
        "environment": env,
    }


def _current(app: ApplicationRef) -> dict[str, Any]:
    return {
        "name": app.name,
        "subdomain": app.subdomain,
        "script": app.script,
        "cpu": app.cpu,
        "memory": app.memory,
        "runtime_identifier": app.runtime_identifier,
        "bypass_authentication": app.bypass_authentication,
        "environment": {k: v for k, v in app.environment.items() if k in (MANAGED_ENV, CONFIG_ENV)},
    }


def _find(api: CmlApi, cfg: PipelineConfig) -> ApplicationRef | None:
    name, subdomain = app_name(cfg), app_subdomain(cfg)
    apps = api.applications()
    named = [a for a in apps if a.name == name]
    problems = []
    if len(named) > 1:
        problems.append(f"application {name!r}: {len(named)} of this name exist; delete the extra ones")
    for app in named[:1]:
        if app.environment.get(MANAGED_ENV) != "true":
            problems.append(
                f"application {name!r} exists but is not managed by cml-monitor (no {MANAGED_ENV} in its "
                "environment); set dashboard.name in the config or delete it"
            )
    taken = [a for a in apps if a.subdomain == subdomain and a.name != name]
    if taken:
        problems.append(f"dashboard.subdomain {subdomain!r} is taken by application {taken[0].name!r}; choose another")
    if problems:
        raise ConfigError(problems)
    return named[0] if named else None


def plan_application(
    api: CmlApi, cfg: PipelineConfig, *, runtime_identifier: str | None = None, config: str | None = None
) -> ApplicationChange:
    """What ``apply_application`` would do; changes nothing.

    Raises:
        ConfigError: an application of the name or subdomain exists that this tool does not manage.
    """
    found = _find(api, cfg)
    runtime = runtime_identifier or api.resolve_runtime(cfg.jobs.runtime_identifier)
    want = desired(cfg, runtime, config)
    if found is None:
        return ApplicationChange(want["name"], "create", want)
    have = _current(found)
    diff = {k: v for k, v in want.items() if have[k] != v}
    if "environment" in diff:  # keep what someone added by hand; set ours
        diff["environment"] = {**found.environment, **want["environment"]}
    return ApplicationChange(want["name"], "update" if diff else "unchanged", diff, found.id)


def apply_application(
    api: CmlApi, cfg: PipelineConfig, *, runtime_identifier: str | None = None, config: str | None = None
) -> ApplicationChange:
    """Create the dashboard application (CML starts it), or update it and restart it so the change takes effect.

    Raises:
        ConfigError: as ``plan_application``.
        PlatformError: CML refused the create, update or restart.
    """
    change = plan_application(api, cfg, runtime_identifier=runtime_identifier, config=config)
    if change.action == "create":
        body = {"project_id": api.project_id, "description": DESCRIPTION, **change.changes}
        api.create_application(body)
    elif change.action == "update":
        api.update_application(change.application_id, change.changes)
        api.restart_application(change.application_id)
    if change.action != "unchanged":
        log.info("application %s", KV(action=change.action, name=change.name))
    return change


def application_url(subdomain: str, domain: str) -> str:
    """Where CML serves an application: ``https://<subdomain>.<domain>/`` (``http`` for a loopback workspace)."""
    scheme = "http" if re.match(r"^(127\.0\.0\.1|localhost)(:\d+)?$", domain) else "https"
    return f"{scheme}://{subdomain}.{domain}/"
