"""The job graph as code: plan, apply (idempotent by name), export, and AMP metadata for cloning."""
from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field as dc_field
from typing import Any, Sequence

from monitoring.config import JobSpec, PipelineConfig
from monitoring.errors import ConfigError
from monitoring.graph_rules import graph_problems
from monitoring.logs import KV
from monitoring.cmlclient.api import CmlApi, env_map, field

log = logging.getLogger(__name__)

#: Environment marker on every job this tool manages; jobs without it are never touched.
MANAGED_ENV = "CML_MONITOR_MANAGED"
SECRET_NAME = re.compile(r"(?i)(key|token|secret|password|passwd|credential)")


@dataclass
class JobChange:
    name: str
    action: str  # create | update | unchanged
    changes: dict[str, Any] = dc_field(default_factory=dict)

    def line(self) -> str:
        detail = ", ".join(f"{k}={v!r}" for k, v in self.changes.items()) if self.action == "update" else ""
        return f"{self.action:9} {self.name}" + (f"  ({detail})" if detail else "")


def ordered(specs: Sequence[JobSpec]) -> list[JobSpec]:
    """Parents before children (the graph is already checked acyclic)."""
    done: list[JobSpec] = []
    names: set[str] = set()
    pending = list(specs)
    while pending:
        ready = [s for s in pending if s.parent is None or s.parent in names]
        for spec in ready:
            done.append(spec)
            names.add(spec.name)
            pending.remove(spec)
    return done


def _desired_fields(spec: JobSpec, runtime: str) -> dict[str, Any]:
    fields: dict[str, Any] = {"script": spec.script, "arguments": spec.arguments, "cpu": float(spec.cpu),
                              "memory": float(spec.memory), "timeout": int(spec.timeout),
                              "environment": {**spec.environment, MANAGED_ENV: "true"},
                              "schedule": spec.schedule or "", "runtime_identifier": runtime}
    return fields


def _actual_fields(job: Any) -> dict[str, Any]:
    return {"script": field(job, "script") or "", "arguments": field(job, "arguments") or "",
            "cpu": float(field(job, "cpu") or 0), "memory": float(field(job, "memory") or 0),
            "timeout": int(field(job, "timeout") or 0), "environment": env_map(field(job, "environment")),
            "schedule": field(job, "schedule") or "", "runtime_identifier": field(job, "runtime_identifier")}


def _check(specs: Sequence[JobSpec]) -> None:
    problems = graph_problems(specs)
    if problems:
        raise ConfigError([f"job graph: {p}" for p in problems])


def plan(api: CmlApi, cfg: PipelineConfig, specs: Sequence[JobSpec] | None = None) -> list[JobChange]:
    """What ``apply`` would do, per job; changes nothing.

    Raises:
        ConfigError: cycles, missing parents, schedules on dependents, duplicate names; or a job
            of the same name exists but is not managed by this tool.
    """
    specs = list(specs or cfg.jobs.graph)
    _check(specs)
    existing = {field(j, "name"): j for j in api.jobs()}
    ids = {name: field(job, "id") for name, job in existing.items()}
    runtime = api.resolve_runtime(cfg.jobs.runtime_identifier)
    changes = []
    for spec in ordered(specs):
        job = existing.get(spec.name)
        want = _desired_fields(spec, runtime)
        want_parent = spec.parent
        if job is None:
            changes.append(JobChange(spec.name, "create", {**want, "parent": want_parent}))
            continue
        have = _actual_fields(job)
        if have["environment"].get(MANAGED_ENV) != "true":
            raise ConfigError(f"job {spec.name!r} exists but is not managed by cml-monitor "
                              f"(no {MANAGED_ENV} in its environment); rename it in the config or delete it")
        diff = {k: v for k, v in want.items() if have.get(k) != v}
        parent_name = next((n for n, i in ids.items() if i and i == field(job, "parent_id")), None)
        if parent_name != want_parent:
            diff["parent"] = want_parent
        changes.append(JobChange(spec.name, "update" if diff else "unchanged", diff))
    return changes


def apply(api: CmlApi, cfg: PipelineConfig, specs: Sequence[JobSpec] | None = None) -> list[JobChange]:
    """Make the project's managed jobs match the graph; creating parents first. Idempotent."""
    specs = list(specs or cfg.jobs.graph)
    changes = plan(api, cfg, specs)
    ids = {field(j, "name"): field(j, "id") for j in api.jobs()}
    for change in changes:
        if change.action == "unchanged":
            continue
        body = dict(change.changes)
        parent = body.pop("parent", None) if "parent" in body else ...
        if parent is not ...:
            body["parent_id"] = ids[parent] if parent else ""
        if change.action == "create":
            body.update(project_id=api.project_id, name=change.name)
            if body.get("schedule"):
                body["timezone"] = cfg.jobs.timezone
            else:
                body.pop("schedule", None)
            if not body.get("parent_id"):
                body.pop("parent_id", None)
            job = api.create_job(body)
            ids[change.name] = field(job, "id")
        else:
            if "environment" in body:
                body["environment"] = json.dumps(body["environment"])  # a JSON string on update (CML quirk)
            api.update_job(ids[change.name], body)
        log.info("job %s", KV(action=change.action, name=change.name))
    return changes


def export(api: CmlApi) -> dict[str, Any]:
    """The project's managed jobs as a ``graph`` list (secrets and the marker left out)."""
    jobs = [j for j in api.jobs() if env_map(field(j, "environment")).get(MANAGED_ENV) == "true"]
    names = {field(j, "id"): field(j, "name") for j in jobs}
    graph = []
    for job in jobs:
        env = {k: v for k, v in env_map(field(job, "environment")).items() if k != MANAGED_ENV}
        dropped = [k for k in env if SECRET_NAME.search(k)]
        for k in dropped:
            log.warning("secret-like variable left out of the export %s", KV(job=field(job, "name"), variable=k))
            env.pop(k)
        entry: dict[str, Any] = {"name": field(job, "name"), "script": field(job, "script")}
        if field(job, "parent_id"):
            entry["parent"] = names.get(field(job, "parent_id"))
        if field(job, "schedule"):
            entry["schedule"] = field(job, "schedule")
        if field(job, "arguments"):
            entry["arguments"] = field(job, "arguments")
        entry.update(cpu=float(field(job, "cpu") or 1), memory=float(field(job, "memory") or 1),
                     timeout=int(field(job, "timeout") or 0))
        if env:
            entry["environment"] = dict(sorted(env.items()))
        graph.append(entry)
    return {"graph": [g for g in ordered_dicts(graph)]}


def ordered_dicts(graph: list[dict[str, Any]]) -> list[dict[str, Any]]:
    specs = ordered([JobSpec(**g) for g in graph])
    by_name = {g["name"]: g for g in graph}
    return [by_name[s.name] for s in specs]


def amp_metadata(cfg: PipelineConfig) -> dict[str, Any]:
    """An AMP ``.project-metadata.yaml`` that imports the pipeline as a prototype."""
    tasks: list[dict[str, Any]] = [{
        "type": "run_session", "name": "Install cml-monitor", "script": "scripts/install.py",
        "short_summary": "pip install the project", "cpu": 1, "memory": 2, "kernel": "python3"}]
    for spec in ordered(cfg.jobs.graph):
        label = re.sub(r"[^a-z0-9_]", "_", spec.script.rsplit("/", 1)[-1].removesuffix(".py"))
        tasks.append({"type": "create_job", "name": spec.name, "entity_label": label, "script": spec.script,
                      "arguments": spec.arguments or "None", "cpu": spec.cpu, "memory": spec.memory,
                      "kernel": "python3", "environment": {**spec.environment, MANAGED_ENV: "true"},
                      "short_summary": f"Create job {spec.name}"})
    artifact = f"{cfg.state.artifacts_dir}/{cfg.model.name}/v1"
    tasks += [
        {"type": "run_session", "name": "Train v1", "script": "scripts/amp_train.py", "cpu": 2, "memory": 4,
         "kernel": "python3", "short_summary": f"Train v1 into {artifact}"},
        {"type": "create_model", "name": cfg.model.name, "entity_label": "model",
         "description": cfg.model.description, "access_key_environment_variable": "CML_MONITOR_MODEL_ACCESS_KEY",
         "default_resources": {"cpu": cfg.deployment.cpu, "memory": cfg.deployment.memory},
         "default_replication_policy": {"type": "fixed", "num_replicas": cfg.deployment.replicas}},
        {"type": "build_model", "name": f"Build {cfg.model.name}", "entity_label": "model",
         "comment": "cml-monitor v1 amp", "target_file_path": cfg.model.serving_file,
         "target_function_name": cfg.model.serving_function, "kernel": "python3",
         "environment_variables": {"CML_MONITOR_MODEL_ARTIFACT": artifact}},
        {"type": "deploy_model", "name": cfg.model.name, "entity_label": "model", "cpu": cfg.deployment.cpu,
         "memory": cfg.deployment.memory, "environment_variables": {"CML_MONITOR_MODEL_ARTIFACT": artifact}},
        {"type": "run_session", "name": "Wire the job chain", "script": "scripts/amp_graph.py", "cpu": 1,
         "memory": 2, "kernel": "python3", "short_summary": "Set parents and the head job's schedule"},
    ]
    return {
        "name": f"cml-monitor: {cfg.model.name}", "description": "Continuous model monitoring: traffic, "
        "accuracy per window, threshold policies, retrain and redeploy with rollback.",
        "author": "cml-monitor", "specification_version": "1.0", "prototype_version": "1.0",
        "date": "2026-11-23", "feature_dependencies": ["model_metrics"],
        "environment_variables": {cfg.model.api_key_env: {
            "default": "", "description": "Model API key (Bearer) used to call the model endpoint",
            "required": False}},
        "runtimes": [{"editor": "PBJ Workbench", "kernel": "Python 3.10", "edition": "Standard"}],
        "tasks": tasks,
    }
