"""The job graph as code: plan, apply (idempotent by name), export, and AMP metadata for cloning.

Only jobs carrying the ``CML_MONITOR_MANAGED`` environment marker are ever changed; a job of
the same name without it is refused. Every structural problem of the graph is reported before
any platform call. Secret-like environment variables never leave the workspace: export and
AMP output leave their values out.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from monitoring.cmlclient.api import CmlApi
from monitoring.cmlclient.refs import JobRef
from monitoring.core.config import JobSpec, PipelineConfig
from monitoring.core.errors import ConfigError
from monitoring.core.graph_rules import graph_problems
from monitoring.core.logs import KV

log = logging.getLogger(__name__)

#: Environment marker on every job this tool manages; jobs without it are never touched.
MANAGED_ENV = "CML_MONITOR_MANAGED"
#: Variable names treated as secrets: never exported, never written into AMP metadata.
SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|passwd|credential)")
#: Date written into AMP metadata (quoted "YYYY-MM-DD", as the AMP spec asks).
AMP_DATE = "2026-11-23"


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


@dataclass(frozen=True)
class JobChange:
    """What apply does to one job: ``create``, ``update`` (the fields that differ) or ``unchanged``.

    ``changes`` maps job fields to their desired values; ``parent`` is the parent job's name.
    """

    name: str
    action: str
    changes: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One line for people: secret-like environment values are masked."""
        if self.action != "update":
            return f"{self.action:9} {self.name}"
        shown = {
            k: ({n: "***" if is_secret(n) else v for n, v in v.items()} if k == "environment" else v)
            for k, v in self.changes.items()
        }
        return f"{self.action:9} {self.name}  ({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


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


def _check(specs: Sequence[JobSpec]) -> None:
    problems = graph_problems(specs)
    if problems:
        raise ConfigError([f"job graph: {p}" for p in problems])


# -- the state apply manages, on both sides --------------------------------------------------
def desired_state(spec: JobSpec, runtime: str, kept_env: dict[str, str] | None = None) -> dict[str, Any]:
    """The fields apply manages for ``spec`` (``kept_env``: secrets already on the job, kept)."""
    return {
        "script": spec.script,
        "arguments": spec.arguments,
        "cpu": float(spec.cpu),
        "memory": float(spec.memory),
        "timeout": int(spec.timeout),
        "schedule": spec.schedule or "",
        "runtime_identifier": runtime,
        "environment": {**(kept_env or {}), **spec.environment, MANAGED_ENV: "true"},
        "parent": spec.parent,
    }


def current_state(job: JobRef, names_by_id: dict[str, str]) -> dict[str, Any]:
    """The same fields, of a job as the project has it."""
    return {
        "script": job.script,
        "arguments": job.arguments,
        "cpu": job.cpu,
        "memory": job.memory,
        "timeout": job.timeout,
        "schedule": job.schedule,
        "runtime_identifier": job.runtime_identifier,
        "environment": dict(job.environment),
        "parent": names_by_id.get(job.parent_id, f"<job {job.parent_id}>") if job.parent_id else None,
    }


def create_body(project_id: str, name: str, state: dict[str, Any], ids: dict[str, str], timezone: str) -> dict:
    """A ``CreateJobRequest``: ``environment`` as a map; schedule (with timezone) or parent, never both."""
    body = {
        "project_id": project_id,
        "name": name,
        **{k: v for k, v in state.items() if k not in ("parent", "schedule")},
    }
    if state["schedule"]:
        body.update(schedule=state["schedule"], timezone=timezone)
    if state["parent"]:
        body["parent_id"] = ids[state["parent"]]
    return body


def update_body(changes: dict[str, Any], ids: dict[str, str]) -> dict:
    """A ``Job`` patch holding only the changed fields, in the types of the ``Job`` message."""
    body: dict[str, Any] = {}
    for key, value in changes.items():
        if key == "parent":
            body["parent_id"] = ids[value] if value else ""
        elif key == "environment":
            body["environment"] = json.dumps(value)  # a JSON string on update (CML quirk)
        elif key == "timeout":
            body["timeout"] = str(value)  # Job.timeout is an int64: a string in the Job message
        else:
            body[key] = value
    return body


# -- plan and apply ----------------------------------------------------------------------------
def _plan(
    api: CmlApi, cfg: PipelineConfig, specs: Sequence[JobSpec] | None, runtime_identifier: str | None
) -> tuple[list[JobChange], dict[str, str]]:
    specs = list(specs or cfg.jobs.graph)
    _check(specs)
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
    changes = []
    for spec in ordered(specs):
        if spec.name not in existing:
            changes.append(JobChange(spec.name, "create", desired_state(spec, runtime)))
            continue
        have = current_state(existing[spec.name][0], names_by_id)
        kept = {k: v for k, v in have["environment"].items() if is_secret(k) and k not in spec.environment}
        diff = {k: v for k, v in desired_state(spec, runtime, kept).items() if have[k] != v}
        changes.append(JobChange(spec.name, "update" if diff else "unchanged", diff))
    return changes, {n: js[0].id for n, js in existing.items()}


def plan(
    api: CmlApi, cfg: PipelineConfig, specs: Sequence[JobSpec] | None = None, *, runtime_identifier: str | None = None
) -> list[JobChange]:
    """What ``apply`` would do, per job, parents first; changes nothing.

    Args:
        specs: the jobs (default ``cfg.jobs.graph``), e.g. from ``read_graph_file``.
        runtime_identifier: the jobs' runtime (default ``jobs.runtime_identifier``, else resolved).

    Raises:
        ConfigError: cycles, missing parents, schedules on dependents, duplicate names; a job of
            the same name that is not managed by this tool, or several jobs of one name.
    """
    return _plan(api, cfg, specs, runtime_identifier)[0]


def apply(
    api: CmlApi,
    cfg: PipelineConfig,
    specs: Sequence[JobSpec] | None = None,
    *,
    runtime_identifier: str | None = None,
    timezone: str | None = None,
) -> list[JobChange]:
    """Make the project's managed jobs match the graph, parents first. Idempotent.

    Args:
        timezone: of the scheduled head job (default ``jobs.timezone``).

    Raises:
        ConfigError: as ``plan``, before any job is created or changed.
        PlatformError: CML refused a create or update (the jobs before it were applied).
    """
    changes, ids = _plan(api, cfg, specs, runtime_identifier)
    for change in changes:
        if change.action == "create":
            body = create_body(api.project_id, change.name, change.changes, ids, timezone or cfg.jobs.timezone)
            ids[change.name] = api.create_job(body).id
        elif change.action == "update":
            api.update_job(ids[change.name], update_body(change.changes, ids))
        else:
            continue
        log.info("job %s", KV(action=change.action, name=change.name))
    return changes


# -- export and AMP ----------------------------------------------------------------------------
def _public_env(job_name: str, env: dict[str, str]) -> dict[str, str]:
    for name in sorted(n for n in env if is_secret(n)):
        log.warning("secret-like variable left out %s", KV(job=job_name, variable=name))
    return {k: v for k, v in sorted(env.items()) if k != MANAGED_ENV and not is_secret(k)}


def export(api: CmlApi) -> dict[str, Any]:
    """The project's managed jobs as a graph file: ``runtime_identifier``, ``timezone`` and ``graph``.

    Each entry has name, script, parent, schedule, arguments, cpu, memory, timeout and the
    environment without the marker and without secret-like variables.
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
        env = _public_env(entry["name"], state["environment"])
        if env:
            entry["environment"] = env
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


def amp_metadata(cfg: PipelineConfig) -> dict[str, Any]:
    """An AMP ``.project-metadata.yaml`` that imports the pipeline as a prototype.

    AMP ``create_job`` tasks cannot set parents or schedules, so the jobs are created with the
    managed marker and a last task runs ``cml-monitor graph apply`` to wire the chain.
    Secret-like job variables become AMP environment variables the user fills in at import.
    """
    secrets: dict[str, str] = {}
    tasks: list[dict[str, Any]] = [
        {
            "type": "run_session",
            "name": "Install cml-monitor",
            "script": "scripts/install.py",
            "short_summary": "pip install the project",
            "cpu": 1,
            "memory": 2,
            "kernel": "python3",
        }
    ]
    for spec in ordered(cfg.jobs.graph):
        secrets.update({n: spec.name for n in spec.environment if is_secret(n)})
        label = re.sub(r"[^a-z0-9_]", "_", spec.script.rsplit("/", 1)[-1].removesuffix(".py"))
        tasks.append(
            {
                "type": "create_job",
                "name": spec.name,
                "entity_label": label,
                "script": spec.script,
                "arguments": spec.arguments or "None",
                "cpu": spec.cpu,
                "memory": spec.memory,
                "kernel": "python3",
                "environment": {**_public_env(spec.name, spec.environment), MANAGED_ENV: "true"},
                "short_summary": f"Create job {spec.name}",
            }
        )
    artifact = f"{cfg.state.artifacts_dir}/{cfg.model.name}/v1"
    tasks += [
        {
            "type": "run_session",
            "name": "Train v1",
            "script": "scripts/amp_train.py",
            "cpu": 2,
            "memory": 4,
            "kernel": "python3",
            "short_summary": f"Train v1 into {artifact}",
        },
        {
            "type": "create_model",
            "name": cfg.model.name,
            "entity_label": "model",
            "description": cfg.model.description,
            "access_key_environment_variable": "CML_MONITOR_MODEL_ACCESS_KEY",
            "default_resources": {"cpu": cfg.deployment.cpu, "memory": cfg.deployment.memory},
            "default_replication_policy": {"type": "fixed", "num_replicas": cfg.deployment.replicas},
        },
        {
            "type": "build_model",
            "name": f"Build {cfg.model.name}",
            "entity_label": "model",
            "comment": "cml-monitor v1 amp",
            "target_file_path": cfg.model.serving_file,
            "target_function_name": cfg.model.serving_function,
            "kernel": "python3",
            "environment_variables": {"CML_MONITOR_MODEL_ARTIFACT": artifact},
        },
        {
            "type": "deploy_model",
            "name": cfg.model.name,
            "entity_label": "model",
            "cpu": cfg.deployment.cpu,
            "memory": cfg.deployment.memory,
            "environment_variables": {"CML_MONITOR_MODEL_ARTIFACT": artifact},
        },
        {
            "type": "run_session",
            "name": "Wire the job chain",
            "script": "scripts/amp_graph.py",
            "cpu": 1,
            "memory": 2,
            "kernel": "python3",
            "short_summary": "Set parents and the head job's schedule",
        },
    ]
    variables = {
        cfg.model.api_key_env: {
            "default": "",
            "description": "Model API key (Bearer) used to call the model endpoint",
            "required": False,
        }
    }
    variables.update(
        {
            name: {
                "default": "",
                "required": True,
                "description": f"Secret used by job {job!r}; enter it here, it is never written to files",
            }
            for name, job in sorted(secrets.items())
        }
    )
    return {
        "name": f"cml-monitor: {cfg.model.name}",
        "description": "Continuous model monitoring: traffic, "
        "accuracy per window, threshold policies, retrain and redeploy with rollback.",
        "author": "cml-monitor",
        "specification_version": "1.0",
        "prototype_version": "1.0",
        "date": AMP_DATE,
        "feature_dependencies": ["model_metrics"],
        "environment_variables": variables,
        "runtimes": [{"editor": "PBJ Workbench", "kernel": "Python 3.10", "edition": "Standard"}],
        "tasks": tasks,
    }
