"""What the pipeline really sends and reads, checked against the API v2 spec definitions.

The bodies are captured by running the pipeline's own code (bootstrap -> release, graph apply
twice, start_job_run) against a local workspace, through a client wrapper that records every
call and every response field read.
"""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

import pytest

from localcml.client.models import serialize
from localcml.workspace import LocalWorkspace
from monitoring.app import graph
from monitoring.app.wiring import build_context
from monitoring.config.pipeline import load_config, parse_config
from monitoring.workflows.bootstrap import bootstrap
from tests.cmlclient.support import OPERATIONS, RecordingClient, enter_workspace, short_sleep
from tests.contract import swagger_check
from tests.project import make_project

HEAVY_FIXTURES = ("pipeline",)  # a started workspace the pipeline ran on (tests/conftest.py)

SPEC = swagger_check.load()
REPO = Path(__file__).resolve().parents[2]
SENT = {
    "create_job": "CreateJobRequest",
    "update_job": "Job",
    "create_job_run": "CreateJobRunRequest",
    "create_model": "CreateModelRequest",
    "create_model_build": "CreateModelBuildRequest",
    "create_model_deployment": "CreateModelDeploymentRequest",
}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Run bootstrap, graph apply (create, then update) and a job run start; record everything."""
    root = tmp_path_factory.mktemp("project")
    cfg = load_config(make_project(root))
    ws = LocalWorkspace(root / cfg.platform.local.workspace_dir, root, health_timeout=60).start()
    with pytest.MonkeyPatch.context() as patch:
        enter_workspace(patch, ws)
        ctx = build_context(cfg, root, clock=ws.clock, sleep=short_sleep)
        platform = ctx.platform
        client = platform.api.client = RecordingClient(platform.api.client)
        bootstrap(ctx)
        graph.apply(platform.api, cfg)
        data = cfg.model_dump(mode="json")
        data["jobs"]["graph"][1].update(
            cpu=2, timeout=600, environment={"LOG_FORMAT": "json"}, alert_emails=["oncall@example.com"]
        )
        data["jobs"]["graph"][0]["schedule"] = "15 * * * *"
        graph.apply(platform.api, parse_config(data))
        redeploy = next(j for j in platform.api.jobs() if j.name == "cml-monitor redeploy")
        run = platform.api.start_job_run(redeploy.id, environment={"CML_MONITOR_DECISION": "none"})
        deadline = time.monotonic() + 120
        while not platform.api.get_job_run(redeploy.id, run.id).finished:
            assert time.monotonic() < deadline, "the redeploy run did not finish"
            time.sleep(0.1)
        yield ctx, client, ws
    ws.stop()


def test_the_pipeline_sent_every_kind_of_request_body(pipeline):
    _, client, _ = pipeline
    sent = {c.method for c in client.calls if "body" in c.kwargs}
    assert sent == set(SENT)
    assert len(client.named("create_job")) == 4 and len(client.named("update_job")) == 2


def test_every_request_body_validates_against_its_spec_definition(pipeline):
    _, client, _ = pipeline
    checked = 0
    for call in client.calls:
        if "body" not in call.kwargs:
            continue
        definition = OPERATIONS[call.method][1]
        assert definition == SENT[call.method]
        assert swagger_check.errors(SPEC, serialize(call.body), definition) == [], (call.method, call.body)
        checked += 1
    assert checked == 4 + 2 + 1 + 1 + 1 + 1


def test_the_environment_is_a_map_on_create_and_a_json_string_on_update(pipeline):
    _, client, _ = pipeline
    for method in ("create_job", "create_model_deployment", "create_job_run"):
        assert all(isinstance(c.body["environment"], dict) for c in client.named(method)), method
    updates = [c.body for c in client.named("update_job") if "environment" in c.body]
    assert updates and all(isinstance(b["environment"], str) for b in updates)
    assert json.loads(updates[0]["environment"])["LOG_FORMAT"] == "json"
    (deployment,) = client.named("create_model_deployment")
    assert "nvidia_gpu" not in deployment.body and deployment.body["replicas"] == 1  # nvidia_gpus on requests


def test_every_cmlapi_call_passes_its_arguments_by_keyword(pipeline):
    _, client, _ = pipeline
    assert len(client.calls) > 20
    assert [c.method for c in client.calls if c.args] == []


def test_every_response_field_read_exists_in_its_response_definition(pipeline):
    _, client, _ = pipeline
    unknown = sorted((d, f) for d, f in client.reads if f not in SPEC["definitions"][d].get("properties", {}))
    assert unknown == []
    assert {
        ("Model", "access_key"),
        ("Model", "crn"),
        ("ModelBuild", "status"),
        ("ModelDeployment", "crn"),
        ("ModelDeployment", "environment"),
        ("Job", "parent_id"),
        ("Job", "environment"),
        ("JobRun", "id"),
        ("ListJobsResponse", "next_page_token"),
    } <= client.reads


def field_names(path: Path) -> set[str]:
    """The names in every ``_field(obj, "name")`` and ``_text(obj, "name")`` call of a module."""
    tree = ast.parse(path.read_text())
    return {
        n.args[1].value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Name)
        and n.func.id in ("_field", "_text")
        and len(n.args) >= 2
        and isinstance(n.args[1], ast.Constant)
    }


def test_every_field_name_in_the_code_is_a_response_field():
    responses = {OPERATIONS[m][2] for m in OPERATIONS if OPERATIONS[m][2]}
    reached, todo = set(responses), list(responses)  # and every definition they nest, at any depth
    while todo:
        for p in SPEC["definitions"][todo.pop()].get("properties", {}).values():
            for ref in (p.get("$ref"), p.get("items", {}).get("$ref")):
                if ref and ref.rsplit("/", 1)[-1] not in reached:
                    reached.add(ref.rsplit("/", 1)[-1])
                    todo.append(ref.rsplit("/", 1)[-1])
    known = {f for d in reached for f in SPEC["definitions"][d].get("properties", {})}
    files = [
        *sorted((REPO / "monitoring/cmlclient").glob("*.py")),
        REPO / "monitoring/app/graph.py",
        *sorted((REPO / "monitoring/workflows").glob("*.py")),
    ]
    read = {f: field_names(f) for f in files}
    assert read[REPO / "monitoring/cmlclient/refs.py"] >= {"id", "crn", "access_key", "status", "parent_id"}
    assert read[REPO / "monitoring/cmlclient/api.py"] >= {"next_page_token"}
    assert {str(f.relative_to(REPO)): sorted(n - known) for f, n in read.items() if n - known} == {}


@pytest.mark.parametrize(
    "method, wrong",
    [
        ("create_job", "environment_variables"),
        ("update_job", "job_id"),
        ("create_job_run", "run_environment"),
        ("create_model", "enable_auth"),
        ("create_model_build", "target_file_path"),
        ("create_model_deployment", "replica_count"),
    ],
)
def test_a_body_gaining_a_field_the_spec_lacks_fails_validation(pipeline, method, wrong):
    _, client, _ = pipeline
    body = serialize(client.named(method)[0].body)
    problems = swagger_check.errors(SPEC, {**body, wrong: "x"}, SENT[method])
    assert problems == [f"$.{wrong}: field not in {SENT[method]}"]


def test_such_a_body_passes_the_workspace_as_it_passes_cml_so_only_the_contract_catches_it(pipeline):
    """CML's gateway ignores unknown fields, and so does the workspace: a misspelt field silently does
    nothing in both. The contract check on the recorded body is what catches it."""
    ctx, client, ws = pipeline
    api = ctx.platform.api
    model = api.find_model(ctx.cfg.model.name)
    live = api.live_deployment(model)

    def with_replica_count(real, **kwargs):
        return real(**{**kwargs, "body": {**kwargs["body"], "replica_count": 2}})  # MCP's name, not the spec's

    client.faults["create_model_deployment"] = with_replica_count
    try:
        made = api.create_deployment(model, live.build_id, 1, 2, 1, {})
    finally:
        del client.faults["create_model_deployment"]
    raw = ws.client().get_model_deployment(ws.project_id, model.id, live.build_id, made.id)
    assert raw.replicas == 1  # replica_count was ignored, as CML ignores it
    sent = serialize(client.named("create_model_deployment")[-1].body)
    assert swagger_check.errors(SPEC, {**sent, "replica_count": 2}, "CreateModelDeploymentRequest") == [
        "$.replica_count: field not in CreateModelDeploymentRequest"
    ]
    api.stop_deployment(model, made)
