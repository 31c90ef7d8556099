"""The job graph as code: plan, apply (idempotent by name) and export, for cloning into other projects.

Only jobs carrying the ``CML_MONITOR_MANAGED`` environment marker are ever changed; a job of
the same name without it is refused. Every structural problem of the graph is reported before
any platform call. Secret-like environment variables never leave the workspace: export leaves
their values out. The fields apply manages, the config file and alert emails included, are in
``monitoring.app.job_fields``; AMP metadata is in ``monitoring.app.amp``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitoring.app.job_fields import (
    ALERT_EVENTS,
    MANAGED_ENV,
    create_body,
    current_state,
    desired_state,
    environment_of,
    is_secret,
    public_environment,
    secret_names,
    update_body,
)
from monitoring.cmlclient.api import CmlApi
from monitoring.cmlclient.refs import JobRef
from monitoring.config.graph_rules import graph_problems
from monitoring.config.pipeline import JobSpec, PipelineConfig
from monitoring.core.errors import ConfigError
from monitoring.core.logs import KV
from monitoring.core.paths import project_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobChange:
    """What apply does to one job: ``create``, ``update`` (the fields that differ) or ``unchanged``.

    ``changes`` maps job fields to their desired values (all of them for ``create``); ``config``
    is the job's config file, ``alert_emails`` who is emailed on failure or timeout, ``parent``
    the parent job's name.
    """

    name: str
    action: str
    changes: dict[str, Any] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()

    def line(self) -> str:
        """One line for people: secret-like environment values are masked."""
        if self.action == "unchanged":
            return f"{self.action:9} {self.name}"
        if self.action == "create":
            shown = {k: self.changes[k] for k in ("config", "alert_emails") if self.changes.get(k)}
        else:
            shown = {
                k: ({n: "***" if is_secret(n, self.secrets) else x for n, x in v.items()} if k == "environment" else v)
                for k, v in self.changes.items()
            }
        details = f"  ({', '.join(f'{k}={v!r}' for k, v in shown.items())})" if shown else ""
        return f"{self.action:9} {self.name}{details}"


@dataclass(frozen=True)
class GraphFile:
    """A graph exported from a project: the jobs plus the runtime and timezone they used."""

    jobs: list[JobSpec]
    runtime_identifier: str | None = None
    timezone: str | None = None


def read_graph_file(path: str | Path) -> GraphFile:
    """Load a graph written by ``cml-monitor graph export``.

    Raises:
        ConfigError: unreadable, not YAML, or an entry that is not a valid job (names the entry).
    """
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the job graph ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("graph"), list):
        raise ConfigError(f"{path}: expected a mapping with a 'graph' list (the output of `graph export`)")
    jobs, problems = [], []
    for i, entry in enumerate(data["graph"]):
        try:
            jobs.append(JobSpec.model_validate(entry))
        except ValidationError as exc:
            problems += [f"{path}: graph[{i}].{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()]
    if problems:
        raise ConfigError(problems)
    return GraphFile(jobs, data.get("runtime_identifier"), data.get("timezone"))


def ordered(specs: Sequence[JobSpec]) -> list[JobSpec]:
    """Parents before children, otherwise in the given order.

    Raises:
        ConfigError: some jobs can never be placed (a cycle or a parent outside the graph).
    """
    done: list[JobSpec] = []
    placed: set[str] = set()
    pending = list(specs)
    while pending:
        ready = [s for s in pending if s.parent is None or s.parent in placed]
        if not ready:
            raise ConfigError(
                [f"job graph: job {s.name!r} waits for parent {s.parent!r}, which is never placed" for s in pending]
            )
        for spec in ready:
            done.append(spec)
            placed.add(spec.name)
            pending.remove(spec)
    return done


def _check(cfg: PipelineConfig, specs: Sequence[JobSpec]) -> None:
    problems = graph_problems(specs, standalone=cfg.jobs.standalone_scripts())
    if problems:
        raise ConfigError([f"job graph: {p}" for p in problems])


# -- plan and apply ----------------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    changes: list[JobChange]
    desired: dict[str, dict[str, Any]]
    ids: dict[str, str]


def _plan(
    api: CmlApi,
    cfg: PipelineConfig,
    specs: Sequence[JobSpec] | None,
    runtime_identifier: str | None,
    config: str | None,
) -> _Plan:
    specs = list(specs or cfg.jobs.graph)
    _check(cfg, specs)
    if config is not None:
        try:
            project_path(config)
        except ValueError as exc:
            raise ConfigError(f"config for the jobs: {exc}") from None
    jobs = api.jobs()
    names_by_id = {j.id: j.name for j in jobs}
    wanted = {s.name for s in specs}
    existing: dict[str, list[JobRef]] = {}
    for job in jobs:
        if job.name in wanted:
            existing.setdefault(job.name, []).append(job)
    problems = [
        f"job {n!r}: {len(js)} jobs of this name exist in project {api.project_id}; delete the extra ones"
        for n, js in existing.items()
        if len(js) > 1
    ]
    problems += [
        f"job {n!r} exists but is not managed by cml-monitor (no {MANAGED_ENV} in its environment); "
        "rename it in the config or delete it"
        for n, js in existing.items()
        if len(js) == 1 and js[0].environment.get(MANAGED_ENV) != "true"
    ]
    if problems:
        raise ConfigError(problems)
    runtime = runtime_identifier or api.resolve_runtime(cfg.jobs.runtime_identifier)
    secrets = secret_names(cfg)
    changes, desired = [], {}
    for spec in ordered(specs):
        emails = cfg.jobs.recipients(spec)
        if spec.name not in existing:
            desired[spec.name] = desired_state(spec, runtime, config=config, alert_emails=emails)
            changes.append(JobChange(spec.name, "create", desired[spec.name], secrets))
            continue
        have = current_state(existing[spec.name][0], names_by_id)
        kept = {k: v for k, v in have["environment"].items() if is_secret(k, secrets) and k not in spec.environment}
        desired[spec.name] = desired_state(spec, runtime, kept, config=config, alert_emails=emails)
        diff = {k: v for k, v in desired[spec.name].items() if have[k] != v}
        changes.append(JobChange(spec.name, "update" if diff else "unchanged", diff, secrets))
    return _Plan(changes, desired, {n: js[0].id for n, js in existing.items()})


def plan(
    api: CmlApi,
    cfg: PipelineConfig,
    specs: Sequence[JobSpec] | None = None,
    *,
    runtime_identifier: str | None = None,
    config: str | None = None,
) -> list[JobChange]:
    """What ``apply`` would do, per job, parents first; changes nothing.

    Args:
        specs: the jobs (default ``cfg.jobs.graph``), e.g. from ``read_graph_file``.
        runtime_identifier: the jobs' runtime (default ``jobs.runtime_identifier``, else resolved).
        config: the config file every job reads (``config_for_jobs``: relative to the project
            root); default the one each job's ``environment`` names, else none (the jobs read
            ``config/pipeline.yaml``).

    Raises:
        ConfigError: cycles, missing parents, schedules on dependents, several heads, unknown
            scripts, duplicate names; a job of the same name that is not managed by this tool,
            or several jobs of one name; a config path outside the project.
    """
    return _plan(api, cfg, specs, runtime_identifier, config).changes


def apply(
    api: CmlApi,
    cfg: PipelineConfig,
    specs: Sequence[JobSpec] | None = None,
    *,
    runtime_identifier: str | None = None,
    timezone: str | None = None,
    config: str | None = None,
) -> list[JobChange]:
    """Make the project's managed jobs match the graph, parents first. Idempotent.

    Args:
        timezone: of the scheduled head job (default ``jobs.timezone``).
        config: as for ``plan``.

    Raises:
        ConfigError: as ``plan``, before any job is created or changed.
        PlatformError: CML refused a create or update (the jobs before it were applied).
    """
    planned = _plan(api, cfg, specs, runtime_identifier, config)
    ids = planned.ids
    for change in planned.changes:
        if change.action == "create":
            body = create_body(api.project_id, change.name, change.changes, ids, timezone or cfg.jobs.timezone)
            ids[change.name] = api.create_job(body).id
        elif change.action == "update":
            api.update_job(ids[change.name], update_body(change.changes, planned.desired[change.name], ids))
        else:
            continue
        log.info("job %s", KV(action=change.action, name=change.name))
    return planned.changes


# -- export and AMP ----------------------------------------------------------------------------
def export(api: CmlApi, secrets: Collection[str] = ()) -> dict[str, Any]:
    """The project's managed jobs as a graph file: ``runtime_identifier``, ``timezone`` and ``graph``.

    Each entry has name, script, parent, schedule, arguments, cpu, memory, timeout, the
    environment (with the config file the job reads) without the marker and without
    secret-like variables, and the alert emails (addresses are not secrets: they are exported).

    Args:
        secrets: variable names to leave out whatever they are called (``secret_names``).
    """
    jobs = api.jobs()
    names_by_id = {j.id: j.name for j in jobs}
    managed = [j for j in jobs if j.environment.get(MANAGED_ENV) == "true"]
    entries: list[dict[str, Any]] = []
    for job in managed:
        state = current_state(job, names_by_id)
        entry: dict[str, Any] = {"name": job.name, "script": state["script"]}
        entry.update({k: state[k] for k in ("parent", "schedule", "arguments") if state[k]})
        entry.update(cpu=state["cpu"], memory=state["memory"], timeout=state["timeout"])
        env = public_environment(entry["name"], environment_of(state), secrets)
        if env:
            entry["environment"] = env
        emails = [e for e, events in job.recipients.items() if set(events) & set(ALERT_EVENTS)]
        if emails:
            entry["alert_emails"] = emails
        entries.append(entry)
    by_name = {e["name"]: e for e in entries}
    specs = [JobSpec(**{**e, "parent": e.get("parent") if e.get("parent") in by_name else None}) for e in entries]
    out: dict[str, Any] = {}
    runtimes = sorted({j.runtime_identifier for j in managed} - {""})
    if len(runtimes) == 1:
        out["runtime_identifier"] = runtimes[0]
    zones = sorted({j.timezone for j in managed if j.schedule} - {""})
    if len(zones) == 1:
        out["timezone"] = zones[0]
    out["graph"] = [by_name[s.name] for s in ordered(specs)]
    return out
