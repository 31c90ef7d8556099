"""CML behaviours CmlApi copes with, each on a real local workspace (faults injected at the client)."""

from __future__ import annotations

import json

import pytest

from monitoring.cmlclient.api import CmlApi
from monitoring.cmlclient.waits import wait_for_build, wait_for_deployment
from monitoring.config.pipeline import DeploymentConfig
from monitoring.core.errors import BusyError, PlatformRequestError, RedeployError, TransientPlatformError
from tests.cmlclient.support import (
    after_the_call_raise,
    api_error,
    changed,
    fail_first,
    fast_policy,
    platform_for,
    raising,
    recased,
    status_is,
)
from tests.waiting import wait_for as wait_until

T0 = 1_790_000_000_000


def built(ws, api, file_path="models/echo.py", comment="c"):
    """A model (made once) and a new build of it, waited for."""
    model = api.find_model("tower") or api.create_model("tower", "test model", auth_enabled=False)
    build_id = api.create_build(model, file_path, "predict", comment, None)
    wait_for_build(platform_for(ws, api), model, build_id, 60, 0.05)
    return model, build_id


def deployed(ws, api, build_id, model, environment=None):
    dep = api.create_deployment(model, build_id, 1, 2, 1, environment or {})
    return wait_for_deployment(platform_for(ws, api), model, dep, 60, 0.05)


# -- create_model_deployment: 500 after the gateway deadline, created anyway --------------------
def test_a_500_after_the_deadline_is_followed_by_a_listing_and_never_a_second_create(ws, client, api, sleeps):
    model, build_id = built(ws, api)

    # the workbench creates the deployment, but the API gateway answers 500 first
    client.faults["create_model_deployment"] = after_the_call_raise(api_error(500, "context deadline exceeded", code=2))
    client.calls.clear()
    dep = api.create_deployment(model, build_id, 1, 2, 1, {"A": "1"})
    methods = [c.method for c in client.calls]
    assert methods.count("create_model_deployment") == 1
    assert "list_model_deployments" in methods[methods.index("create_model_deployment") + 1 :]
    assert [d.id for d in api.deployments(model, build_id)] == [dep.id]
    assert dep.environment == {"A": "1"} and sleeps == [1.0]


def test_the_same_with_the_workspace_injecting_the_500_after_creating(ws, client, api, sleeps):
    model, build_id = built(ws, api)
    ws.inject("api.create_model_deployment=500-after x1")  # server side: created, then HTTP 500
    dep = api.create_deployment(model, build_id, 1, 2, 1, {})
    assert len(client.named("create_model_deployment")) == 1 and sleeps == [1.0]
    assert [d.id for d in api.deployments(model, build_id)] == [dep.id]
    assert wait_for_deployment(platform_for(ws, api), model, dep, 60, 0.05).status == "deployed"


def test_out_of_retries_the_deployment_created_anyway_is_still_found(ws, client, sleeps):
    api = CmlApi(client, ws.project_id, fast_policy(sleeps, attempts=1))
    model, build_id = built(ws, api)
    client.faults["create_model_deployment"] = after_the_call_raise(api_error(504, "upstream request timeout"))
    dep = api.create_deployment(model, build_id, 1, 2, 1, {})
    assert [d.id for d in api.deployments(model, build_id)] == [dep.id] and sleeps == []


def test_a_500_that_created_nothing_is_retried_once_and_creates_one(ws, client, api, sleeps):
    model, build_id = built(ws, api)
    client.faults["create_model_deployment"] = fail_first(1, api_error(503, "unavailable"))
    dep = api.create_deployment(model, build_id, 1, 2, 1, {})
    assert len(client.named("create_model_deployment")) == 2
    assert [d.id for d in api.deployments(model, build_id)] == [dep.id] and sleeps == [1.0]


@pytest.mark.parametrize("method", ["create_model", "create_model_build", "create_job"])
def test_every_create_whose_answer_is_lost_finds_what_it_created_and_never_creates_twice(
    ws, client, api, sleeps, method
):
    model = api.create_model("tower", "test model", auth_enabled=False) if method != "create_model" else None
    client.faults[method] = after_the_call_raise(api_error(500, "context deadline exceeded", code=2))
    if method == "create_model":
        made = api.create_model("tower", "test model", auth_enabled=False)
        assert [m.id for m in [api.find_model("tower")]] == [made.id]
    elif method == "create_model_build":
        made = api.create_build(model, "models/echo.py", "predict", "the one build", None)
        assert [b.id for b in api.builds(model)] == [made]
    else:
        body = {"project_id": ws.project_id, "name": "once", "script": "scripts/ok.py"}
        made = api.create_job({**body, "runtime_identifier": api.resolve_runtime(None)})
        assert [j.id for j in api.jobs() if j.name == "once"] == [made.id]
    assert len(client.named(method)) == 1 and sleeps == [1.0]


# -- pagination ------------------------------------------------------------------------------------
@pytest.fixture
def jobs25(ws, client):
    runtime = ws.client().list_runtimes().runtimes[0].image_identifier
    for i in range(25):
        ws.client().create_job(
            {"name": f"job-{i:02d}", "script": "scripts/ok.py", "runtime_identifier": runtime}, ws.project_id
        )
    client.calls.clear()


def test_paging_sends_the_same_page_size_with_every_token_and_reads_every_page(ws, client, sleeps, jobs25):
    api = CmlApi(client, ws.project_id, fast_policy(sleeps), page_size=10)
    assert [j.name for j in api.jobs()] == [f"job-{i:02d}" for i in range(25)]
    calls = client.named("list_jobs")
    assert [c.kwargs["page_size"] for c in calls] == [10, 10, 10]
    tokens = [c.kwargs.get("page_token") for c in calls]
    assert tokens[0] is None and len(set(tokens[1:])) == 2 and all(tokens[1:])


def test_paging_stops_on_a_repeated_token_and_on_an_empty_page(ws, client, sleeps, jobs25):
    api = CmlApi(client, ws.project_id, fast_policy(sleeps), page_size=10)

    def same_token_forever(real, **kwargs):
        kwargs.pop("page_token", None)
        page = real(**kwargs)
        page.next_page_token = "again"
        return page

    client.faults["list_jobs"] = same_token_forever
    assert len(api.jobs()) == 20 and len(client.named("list_jobs")) == 2

    def empty_page_with_a_token(real, **kwargs):
        page = real(**kwargs)
        page.jobs, page.next_page_token = [], "more"
        return page

    client.faults["list_jobs"] = empty_page_with_a_token
    client.calls.clear()
    assert api.jobs() == [] and len(client.named("list_jobs")) == 1


# -- search_filter is a substring match ------------------------------------------------------------
def test_find_model_confirms_the_exact_name_after_the_substring_filter(ws, api):
    for name in ("tower-v2", "old tower", "tower"):
        api.create_model(name, "d", auth_enabled=False)
    server_hits = ws.client().list_models(ws.project_id, search_filter=json.dumps({"name": "towe"})).models
    assert len(server_hits) == 3
    assert api.find_model("towe") is None
    assert api.find_model("tower").name == "tower"
    api.create_model("tower", "a second one", auth_enabled=False)
    with pytest.raises(PlatformRequestError, match="2 models are named 'tower'"):
        api.find_model("tower")


# -- latest build, live deployment, new CRN after a redeploy ---------------------------------------
def test_builds_are_newest_first_by_created_at_whatever_order_the_server_lists(ws, client, api):
    ids = []
    for i in range(3):
        ws.set_now(T0 + i * 60_000)
        ids.append(built(ws, api, comment=f"b{i}")[1])
    model = api.find_model("tower")
    client.faults["list_model_builds"] = changed(lambda page: page.model_builds.reverse())  # sort ignored
    assert [b.id for b in api.builds(model)] == ids[::-1]


def test_live_deployment_is_the_deployed_one_and_a_redeploy_changes_its_crn(ws, api):
    model, first_build = built(ws, api, comment="v1")
    first = deployed(ws, api, first_build, model, {"CML_MONITOR_MODEL_ARTIFACT": "var/models/tower/v1"})
    assert api.live_deployment(model) == first and first.status == "deployed"
    _, second_build = built(ws, api, comment="v2")
    second = deployed(ws, api, second_build, model, {"CML_MONITOR_MODEL_ARTIFACT": "var/models/tower/v2"})
    live = api.live_deployment(model)
    assert live.id == second.id and live.crn != first.crn  # a new deployment: a new CRN to read metrics by
    assert live.environment["CML_MONITOR_MODEL_ARTIFACT"].endswith("v2")
    wait_until(lambda: api.get_deployment(model, first_build, first.id).status == "stopped", "v1 to be replaced")
    api.stop_deployment(model, live)
    assert api.live_deployment(model) is None  # nothing has status "deployed"
    ws.client().restart_model_deployment(ws.project_id, model.id, first_build, first.id)
    wait_until(lambda: api.get_deployment(model, first_build, first.id).status == "deployed", "v1 to restart")
    assert api.live_deployment(model).id == first.id  # the older one, because it is the one deployed


def test_environment_is_a_map_on_create_and_a_json_string_in_responses(ws, client, api):
    model, build_id = built(ws, api)
    dep = deployed(ws, api, build_id, model, {"A": "1", "B": "two"})
    (create,) = client.named("create_model_deployment")
    assert create.body["environment"] == {"A": "1", "B": "two"}
    raw = ws.client().get_model_deployment(ws.project_id, model.id, build_id, dep.id).environment
    assert isinstance(raw, str) and json.loads(raw) == {"A": "1", "B": "two"}
    assert dep.environment == {"A": "1", "B": "two"}


# -- statuses in any case; bounded waits -----------------------------------------------------------
def test_build_and_deployment_statuses_are_compared_case_insensitively(ws, client, api):
    client.faults["get_model_build"] = recased("", str.upper)  # "BUILT"
    client.faults["get_model_deployment"] = recased("", str.title)  # "Deployed"
    model, build_id = built(ws, api)
    assert deployed(ws, api, build_id, model).status == "deployed"


def test_a_failed_build_in_any_case_fails_the_wait(ws, client, api):
    client.faults["get_model_build"] = status_is("Build Failed")
    model = api.create_model("tower", "d", auth_enabled=False)
    build_id = api.create_build(model, "models/echo.py", "predict", "c", None)
    with pytest.raises(RedeployError, match=rf"build {build_id} of model 'tower' ended with status 'build failed'"):
        wait_for_build(platform_for(ws, api), model, build_id, 60, 0.05)


@pytest.mark.parametrize("what", ["build", "deployment"])
def test_every_wait_ends_at_its_configured_timeout(ws, client, api, what):
    cfg = DeploymentConfig(build_timeout="2m", deploy_timeout="90s", poll_interval="5s")
    model, build_id = built(ws, api)
    now = [0.0]
    platform = platform_for(ws, api, sleep=lambda s: now.__setitem__(0, now[0] + s), monotonic=lambda: now[0])
    client.calls.clear()
    if what == "build":
        client.faults["get_model_build"] = status_is("pushing")  # builds can hang in pushing
        with pytest.raises(RedeployError, match=rf"timed out after 120s waiting for build {build_id} to be built"):
            wait_for_build(
                platform, model, build_id, cfg.build_timeout.total_seconds(), cfg.poll_interval.total_seconds()
            )
        assert len(client.named("get_model_build")) == 120 // 5 + 1 and now[0] == 120
    else:
        client.faults["get_model_deployment"] = status_is("pending")
        dep = api.create_deployment(model, build_id, 1, 2, 1, {})
        with pytest.raises(RedeployError, match=rf"timed out after 90s waiting for deployment {dep.id}"):
            wait_for_deployment(
                platform, model, dep, cfg.deploy_timeout.total_seconds(), cfg.poll_interval.total_seconds()
            )
        assert now[0] == 90


# -- one active run per job -------------------------------------------------------------------------
@pytest.mark.parametrize("casing", [str, str.lower], ids=["as-served", "lower-case"])
def test_a_second_run_of_a_busy_job_is_a_busy_error_naming_the_active_run(ws, client, api, casing):
    client.faults["list_job_runs"] = recased("job_runs", casing)
    runtime = api.resolve_runtime(None)
    job_id = api.create_job(
        {"project_id": ws.project_id, "name": "blocker", "script": "scripts/block.py", "runtime_identifier": runtime}
    ).id
    run_id = api.start_job_run(job_id).id
    try:
        with pytest.raises(BusyError, match=rf"job {job_id} already has an active run \({run_id}\)") as err:
            api.start_job_run(job_id)
        assert err.value.exit_code == 6
    finally:
        ws.client().stop_job_run(ws.project_id, job_id, run_id)
    wait_until(lambda: api.get_job_run(job_id, run_id).status == "ENGINE_STOPPED", "the run to stop")


def test_a_refused_run_that_is_not_busy_stays_a_request_error(ws, api):
    with pytest.raises(PlatformRequestError, match=r"start a run of job nope: HTTP 404: job 'nope' not found"):
        api.start_job_run("nope")


def test_transient_errors_on_reads_are_retried_then_reported(ws, client, api, sleeps):
    client.faults["list_models"] = raising(api_error(503, "overloaded"))
    with pytest.raises(TransientPlatformError, match=r"list models named 'x': HTTP 503: overloaded"):
        api.find_model("x")
    assert len(client.named("list_models")) == 4 and sleeps == [1.0, 2.0, 4.0]
