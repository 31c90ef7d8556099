"""API v2 semantics of the local workspace over real HTTP: paging, filters, quirks, errors, client conventions."""

from __future__ import annotations

import json
import logging

import pytest

import localcml.client.api as client_mod
from localcml.client.api import ApiException, CMLServiceApi, default_client
from localcml.client.models import MODELS
from localcml.environment import SHIM_DIR


def _names(page) -> list[str]:
    return [j.name for j in page.jobs]


def test_25_jobs_page_10_10_5_with_tokens(api, ws, new_job):
    for i in range(25):
        new_job(f"job-{i:02d}")
    first = api.list_jobs(ws.project_id)
    assert _names(first) == [f"job-{i:02d}" for i in range(10)] and first.next_page_token
    second = api.list_jobs(ws.project_id, page_token=first.next_page_token)
    assert _names(second) == [f"job-{i:02d}" for i in range(10, 20)] and second.next_page_token
    third = api.list_jobs(ws.project_id, page_token=second.next_page_token)
    assert _names(third) == [f"job-{i:02d}" for i in range(20, 25)]
    assert third.next_page_token == ""
    assert len(api.list_jobs(ws.project_id, page_size=7).jobs) == 7


def test_cursor_iterates_every_page(api, ws, new_job, monkeypatch):
    monkeypatch.syspath_prepend(str(SHIM_DIR))
    from cmlapi.utils import Cursor

    for i in range(13):
        new_job(f"c-{i}")
    names = [j.name for j in Cursor(api.list_jobs, project_id=ws.project_id, page_size=4).items()]
    assert names == [f"c-{i}" for i in range(13)]


def test_search_filter_is_a_case_sensitive_substring(api, ws, new_job):
    for name in ("DSE", "DS", "ds-lower", "other"):
        new_job(name)
    found = api.list_jobs(ws.project_id, search_filter=json.dumps({"name": "DS"}))
    assert sorted(_names(found)) == ["DS", "DSE"]
    assert _names(api.list_jobs(ws.project_id, search_filter=json.dumps({"type": "man"}))) == [
        "DSE",
        "DS",
        "ds-lower",
        "other",
    ]
    with pytest.raises(ApiException) as err:
        api.list_jobs(ws.project_id, search_filter=json.dumps({"colour": "x"}))
    assert err.value.status == 400 and "colour" in json.loads(err.value.body)["message"]


def test_sort_descending_by_created_at_and_unsupported_sort_refused(api, ws, new_job):
    for name in ("a", "b", "c"):
        new_job(name)
    assert _names(api.list_jobs(ws.project_id, sort="-created_at")) == ["c", "b", "a"]
    assert _names(api.list_jobs(ws.project_id, sort="-name")) == ["c", "b", "a"]
    with pytest.raises(ApiException) as err:
        api.list_jobs(ws.project_id, sort="-colour")
    assert err.value.status == 400


def test_environment_is_a_map_on_create_and_a_json_string_on_responses_and_update(api, ws, new_job):
    job = new_job("env", environment={"A": "1"}, timeout=90)
    assert job.environment == '{"A": "1"}' and isinstance(job.environment, str)
    assert job.timeout == "90"  # int64 arrives as a string
    assert json.loads(api.get_job(ws.project_id, job.id).environment) == {"A": "1"}
    updated = api.update_job({"environment": json.dumps({"B": "2"})}, ws.project_id, job.id)
    assert json.loads(updated.environment) == {"B": "2"}
    with pytest.raises(ApiException) as err:  # a map is refused on update: it must be a JSON string
        api.update_job({"environment": {"B": "2"}}, ws.project_id, job.id)
    assert err.value.status == 400 and "environment" in json.loads(err.value.body)["message"]
    project = api.get_project(ws.project_id)
    assert isinstance(project.environment, str)


def test_job_types_and_schedule_with_parent_rejected(api, ws, new_job):
    head = new_job("head", schedule="0 * * * *")
    child = new_job("child", parent_id=head.id)
    plain = new_job("plain")
    assert (head.type, child.type, plain.type) == ("cron", "dependent", "manual")
    assert child.parent_id == head.id
    with pytest.raises(ApiException) as err:
        new_job("both", schedule="0 * * * *", parent_id=head.id)
    body = json.loads(err.value.body)
    assert err.value.status == 400 and body["code"] == 3
    assert "schedule" in body["message"] and "parent_id" in body["message"]
    with pytest.raises(ApiException):
        api.update_job({"schedule": "5 * * * *"}, ws.project_id, child.id)
    moved = api.update_job({"parent_id": plain.id}, ws.project_id, child.id)
    assert moved.parent_id == plain.id and moved.type == "dependent"


def test_the_gateway_ignores_unknown_fields_reads_numbers_in_strings_and_refuses_wrong_types(
    api, ws, runtime_id, caplog
):
    body = {"name": "x", "script": "scripts/ok.py", "runtime_identifier": runtime_id, "replica_count": 2}
    with caplog.at_level(logging.DEBUG, logger="localcml.core.bodies"):
        job = api.create_job({**body, "cpu": "2", "memory": "4.5", "timeout": "60"}, ws.project_id)
    assert (job.cpu, job.memory, job.timeout) == (2.0, 4.5, "60")  # proto3 JSON: numbers may be strings
    assert "replica_count" not in str(api.get_job(ws.project_id, job.id).to_dict())
    assert "CreateJob: ignoring field(s) replica_count unknown to CreateJobRequest" in caplog.text
    for wrong, named in (({"cpu": "two"}, "cpu"), ({"paused": "yes"}, "paused"), ({"timeout": 1.5}, "timeout")):
        with pytest.raises(ApiException) as err:
            api.create_job({**body, "name": f"bad {named}", **wrong}, ws.project_id)
        assert err.value.status == 400 and named in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        api.create_job({"name": "x", "script": "scripts/ok.py"}, ws.project_id)
    assert "runtime_identifier" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        api.create_job(
            {"name": "x", "script": "scripts/ok.py", "runtime_identifier": runtime_id, "kernel": "python3"},
            ws.project_id,
        )
    assert "kernel" in json.loads(err.value.body)["message"]


def test_api_exception_has_status_reason_and_runtime_error_body(api, ws):
    with pytest.raises(ApiException) as err:
        api.get_job(ws.project_id, "nope-nope-nope-nope")
    exc = err.value
    assert exc.status == 404 and exc.reason == "Not Found"
    body = json.loads(exc.body)
    assert set(body) == {"error", "code", "message", "details"} and body["code"] == 5
    assert "nope-nope-nope-nope" in body["message"]


def test_wrong_api_key_is_401(ws):
    bad = default_client(url=ws.url, cml_api_key="not-the-key")
    with pytest.raises(ApiException) as err:
        bad.list_projects()
    assert err.value.status == 401 and json.loads(err.value.body)["code"] == 16


def test_models_are_objects_with_to_dict_and_strict_constructors(api, ws):
    page = api.list_projects()
    assert isinstance(page, MODELS["ListProjectsResponse"])
    project = page.projects[0]
    assert project.id == ws.project_id and project.to_dict()["name"] == "cml-monitor"
    assert project == api.get_project(ws.project_id)
    with pytest.raises(TypeError, match="replica_count"):
        MODELS["CreateModelDeploymentRequest"](replica_count=1)
    body = MODELS["CreateJobRequest"](
        name="typed", script="scripts/ok.py", runtime_identifier=api.list_runtimes().runtimes[0].image_identifier
    )
    assert api.create_job(body, ws.project_id).name == "typed"


def test_async_req_returns_object_with_get(api, ws):
    pending = api.get_project(ws.project_id, async_req=True)
    assert pending.get(timeout=10).id == ws.project_id
    failing = api.get_job(project_id=ws.project_id, job_id="missing", async_req=True)
    with pytest.raises(ApiException):
        failing.get(timeout=10)


def test_keyword_and_positional_calls_agree_and_bad_kwargs_refused(api, ws, new_job):
    job = new_job("kw")
    assert api.get_job(ws.project_id, job.id) == api.get_job(job_id=job.id, project_id=ws.project_id)
    with pytest.raises(TypeError, match="colour"):
        api.list_jobs(ws.project_id, colour="red")
    with pytest.raises(ValueError, match="project_id"):
        api.list_jobs()


def test_default_client_needs_url_and_key(monkeypatch):
    monkeypatch.delenv("CDSW_API_URL", raising=False)
    monkeypatch.delenv("CDSW_APIV2_KEY", raising=False)
    with pytest.raises(ValueError, match="please include the keyword arguments url and cml_api_key"):
        default_client()


def test_default_client_reads_engine_env(monkeypatch, ws):
    monkeypatch.setenv("CDSW_API_URL", f"{ws.url}/api/v1")
    monkeypatch.setenv("CDSW_APIV2_KEY", ws.api_key)
    client = client_mod.default_client()
    assert isinstance(client, CMLServiceApi)
    assert client.api_client.configuration.host == ws.url
    assert client.get_project(ws.project_id).id == ws.project_id


def test_delete_job_keeps_dependents(api, ws, new_job):
    parent = new_job("parent")
    child = new_job("child", parent_id=parent.id)
    assert api.delete_job(ws.project_id, parent.id) == {}
    assert api.get_job(ws.project_id, child.id).parent_id == parent.id


def test_many_connections_do_not_leak_database_connections(ws):
    import os

    import requests

    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):
        pytest.skip("needs /proc to count open files")
    url = f"{ws.url}/api/v2/projects/{ws.project_id}"
    headers = {"authorization": f"Bearer {ws.api_key}"}
    requests.get(url, headers=headers, timeout=10).raise_for_status()
    before = len(os.listdir(fd_dir))
    for _ in range(60):  # each call is a new connection, so a new server thread
        with requests.get(url, headers={**headers, "Connection": "close"}, timeout=10) as reply:
            reply.raise_for_status()
    assert len(os.listdir(fd_dir)) - before < 10


def test_descending_sort_puts_the_newest_first_even_within_one_millisecond(ws, api, new_job):
    ws.clock.now_ms = lambda: 1_900_000_000_000  # every object gets the same created_at
    for name in ("first", "second", "third"):
        new_job(name)
    assert _names(api.list_jobs(ws.project_id, sort="-created_at")) == ["third", "second", "first"]
    assert _names(api.list_jobs(ws.project_id, sort="created_at")) == ["first", "second", "third"]
