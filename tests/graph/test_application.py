"""The dashboard application in the job graph: planned, created, updated and restarted, never one it does not manage."""

from __future__ import annotations

import json

import pytest

from monitoring.app.amp import amp_metadata
from monitoring.app.application import apply_application, plan_application
from monitoring.app.job_fields import MANAGED_ENV
from monitoring.config.pipeline import CONFIG_ENV
from monitoring.core.errors import ConfigError
from tests.graph.support import api_for, config, writes


def test_plan_shows_the_application_and_apply_creates_it_once_behind_cml_authentication(workspace):
    api, cfg = api_for(workspace("a")), config()
    change = plan_application(api, cfg, config="config/pipeline.yaml")
    assert change.action == "create" and writes(api) == [] and api.applications() == []
    assert change.line() == (
        "create    application telco-cell-tower-failure dashboard  (subdomain='telco-cell-tower-failure')"
    )
    apply_application(api, cfg, config="config/pipeline.yaml")
    (app,) = api.applications()
    assert (app.name, app.subdomain, app.script) == (
        "telco-cell-tower-failure dashboard",
        "telco-cell-tower-failure",
        "apps/dashboard.py",
    )
    assert app.environment == {MANAGED_ENV: "true", CONFIG_ENV: "config/pipeline.yaml"}
    assert app.bypass_authentication is False and (app.cpu, app.memory) == (1.0, 2.0) and app.runtime_identifier
    (create,) = api.client.named("create_application")
    assert create.kwargs["body"]["bypass_authentication"] is False
    api.client.calls.clear()
    assert apply_application(api, cfg, config="config/pipeline.yaml").action == "unchanged"
    assert writes(api) == []


def test_a_changed_dashboard_config_updates_the_application_and_restarts_it(workspace):
    api = api_for(workspace("a"))
    apply_application(api, config(), config="config/pipeline.yaml")
    (before,) = api.applications()
    api.client.calls.clear()
    bigger = config(lambda d: d.update(dashboard={"memory": 4, "subdomain": "tower-dash"}))
    change = apply_application(api, bigger, config="config/prod.yaml")
    assert change.action == "update" and set(change.changes) == {"memory", "subdomain", "environment"}
    assert writes(api) == ["update_application", "restart_application"]
    (update,) = api.client.named("update_application")
    assert (
        json.loads(update.kwargs["body"]["environment"])[CONFIG_ENV] == "config/prod.yaml"
    )  # a JSON string, as CML wants
    (after,) = api.applications()
    assert (after.id, after.memory, after.subdomain) == (before.id, 4.0, "tower-dash")


def test_an_application_it_does_not_manage_is_refused_before_any_change(workspace):
    api, cfg = api_for(workspace("a")), config()
    runtime = api.resolve_runtime(None)
    api.client.create_application(
        {
            "name": "telco-cell-tower-failure dashboard",
            "subdomain": "someone",
            "script": "x.py",
            "runtime_identifier": runtime,
        },
        api.project_id,
    )
    with pytest.raises(ConfigError, match="exists but is not managed by cml-monitor"):
        plan_application(api, cfg)
    taken = config(lambda d: d.update(dashboard={"subdomain": "someone", "name": "mine"}))
    with pytest.raises(ConfigError, match="dashboard.subdomain 'someone' is taken by application"):
        apply_application(api, taken)
    assert [a.name for a in api.applications()] == ["telco-cell-tower-failure dashboard"]


def test_the_amp_starts_the_dashboard_before_graph_apply_wires_the_chain():
    tasks = amp_metadata(config(), "config/pipeline.yaml")["tasks"]
    kinds = [t["type"] for t in tasks]
    start = kinds.index("start_application")
    assert tasks[start + 1]["name"] == "Wire the job chain"
    app = tasks[start]
    assert (app["subdomain"], app["script"], app["bypass_authentication"]) == (
        "telco-cell-tower-failure",
        "apps/dashboard.py",
        False,
    )
    assert app["environment_variables"] == {MANAGED_ENV: "true", CONFIG_ENV: "config/pipeline.yaml"}
    off = amp_metadata(config(lambda d: d.update(dashboard={"enabled": False})))["tasks"]
    assert "start_application" not in [t["type"] for t in off]
