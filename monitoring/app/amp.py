"""AMP metadata: a ``.project-metadata.yaml`` that imports the pipeline into a new CML project."""

from __future__ import annotations

import re
from typing import Any

from monitoring.app.application import app_name, app_subdomain
from monitoring.app.graph import ordered
from monitoring.app.job_fields import MANAGED_ENV, is_secret, public_environment, secret_names
from monitoring.config.pipeline import CONFIG_ENV, PipelineConfig

#: Date written into AMP metadata (quoted "YYYY-MM-DD", as the AMP spec asks).
AMP_DATE = "2026-11-23"


def _dashboard_task(cfg: PipelineConfig, config: str | None) -> list[dict[str, Any]]:
    """The dashboard application, started before ``graph apply`` runs (which then finds it managed)."""
    if not cfg.dashboard.enabled:
        return []
    return [
        {
            "type": "start_application",
            "name": app_name(cfg),
            "subdomain": app_subdomain(cfg),
            "script": cfg.dashboard.script,
            "short_summary": "Start the live monitoring dashboard",
            "cpu": cfg.dashboard.cpu,
            "memory": cfg.dashboard.memory,
            "kernel": "python3",
            "bypass_authentication": False,
            "environment_variables": {MANAGED_ENV: "true", **({CONFIG_ENV: config} if config else {})},
        }
    ]


def amp_metadata(cfg: PipelineConfig, config: str | None = None) -> dict[str, Any]:
    """An AMP ``.project-metadata.yaml`` that imports the pipeline as a prototype.

    AMP ``create_job`` tasks cannot set parents or schedules, so the jobs are created with the
    managed marker and a last task runs ``cml-monitor graph apply`` to wire the chain. The
    dashboard application (``dashboard.enabled``) is started just before, with the same marker.
    Secret-like job variables (and the webhook URL's) become AMP environment variables the
    user fills in at import.

    Args:
        config: the config file the jobs read, relative to the project root (``config_for_jobs``):
            set in each job's environment and as the project's ``CML_MONITOR_CONFIG``, so the
            AMP's own sessions (training v1, ``graph apply``) read it too.
    """
    hidden = secret_names(cfg)
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
        secrets.update({n: spec.name for n in spec.environment if is_secret(n, hidden)})
        env = {**spec.environment, **({CONFIG_ENV: config} if config else {})}
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
                "environment": {**public_environment(spec.name, env, hidden), MANAGED_ENV: "true"},
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
        *_dashboard_task(cfg, config),
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
    webhook = cfg.alerts.webhook.url_env
    if webhook:
        variables[webhook] = {
            "default": "",
            "required": False,
            "description": "Webhook URL for decisions (breach, redeploy outcome); empty: no webhook",
        }
    if config:
        variables[CONFIG_ENV] = {
            "default": config,
            "required": True,
            "description": "The pipeline config every job and setup step reads (relative to the project root)",
        }
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
