"""Projects are isolated: own directory, engine variables, jobs, models and applications; update and delete."""

from __future__ import annotations

import json
import subprocess

import pytest

from localcml.client.api import ApiException
from tests.local.support import wait_run

PROBE = """\
import json, os
keys = ("CDSW_PROJECT_ID", "CDSW_PROJECT", "PROJECT_OWNER", "CDSW_CREATOR", "TEAM", "ML_RUNTIME_KERNEL")
with open("probe.json", "w") as f:
    json.dump({"cwd": os.getcwd(), **{k: os.environ.get(k) for k in keys}}, f)
"""


def test_a_project_created_through_the_api_is_isolated(api, ws, project_root, runtime_id):
    other = api.create_project({"name": "lab", "environment": {"TEAM": "blue"}})
    folder = ws.workspace_dir / "projects" / other.id
    assert folder.is_dir() and list(folder.iterdir()) == []  # template local: an empty project
    (folder / "probe.py").write_text(PROBE)
    job = api.create_job({"name": "probe", "script": "probe.py", "runtime_identifier": runtime_id}, other.id)
    run = api.create_job_run({}, other.id, job.id)
    assert wait_run(api, other.id, job.id, run.id).status == "ENGINE_SUCCEEDED"
    probe = json.loads((folder / "probe.json").read_text())
    owner = other.owner.username
    assert probe["cwd"] == str(folder.resolve()) and not (project_root / "probe.json").exists()
    assert (probe["CDSW_PROJECT_ID"], probe["CDSW_PROJECT"], probe["PROJECT_OWNER"]) == (other.id, "lab", owner)
    assert probe["TEAM"] == "blue" and probe["CDSW_CREATOR"] == owner
    assert (
        probe["ML_RUNTIME_KERNEL"]
        == api.list_runtimes(search_filter=json.dumps({"image_identifier": runtime_id})).runtimes[0].kernel
    )
    assert [j.name for j in api.list_jobs(other.id).jobs] == ["probe"]
    assert api.list_jobs(ws.project_id).jobs == [] and api.list_models(other.id).models == []
    with pytest.raises(ApiException) as err:  # another project's job is not found through this project
        api.get_job(ws.project_id, job.id)
    assert err.value.status == 404


def test_update_project_changes_what_its_engines_see_and_delete_removes_it(api, ws, runtime_id):
    other = api.create_project({"name": "lab", "environment": {"TEAM": "blue"}})
    changed = api.update_project({"description": "moved", "environment": '{"TEAM": "green"}'}, other.id)
    assert changed.description == "moved" and json.loads(changed.environment) == {"TEAM": "green"}
    assert api.get_project(other.id).description == "moved"
    with pytest.raises(ApiException) as err:
        api.update_project({"name": "cml-monitor"}, other.id)
    assert err.value.status == 409
    folder = ws.workspace_dir / "projects" / other.id
    api.delete_project(other.id)
    assert not folder.exists() and [p.id for p in api.list_projects().projects] == [ws.project_id]
    with pytest.raises(ApiException) as err:
        api.delete_project(ws.project_id)
    assert err.value.status == 400 and "workspace's own project" in json.loads(err.value.body)["message"]


def test_git_and_fork_templates_copy_files_and_unknown_templates_are_501(api, ws, tmp_path):
    origin = tmp_path / "origin"
    origin.mkdir()
    (origin / "train.py").write_text("print('train')\n")
    for argv in (["init", "-q"], ["add", "."], ["-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "x"]):
        subprocess.run(["git", *argv], cwd=origin, check=True)
    cloned = api.create_project({"name": "cloned", "template": "git", "git_url": str(origin)})
    assert (ws.workspace_dir / "projects" / cloned.id / "train.py").read_text() == "print('train')\n"
    fork = api.create_project({"name": "fork", "parent_project": cloned.id})
    assert (ws.workspace_dir / "projects" / fork.id / "train.py").is_file()
    with pytest.raises(ApiException) as err:
        api.create_project({"name": "nope", "template": "Churn Predictor"})
    assert err.value.status == 501 and "'Churn Predictor' is not available" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        api.create_project({"name": "gone", "template": "git", "git_url": str(tmp_path / "missing")})
    assert err.value.status == 400 and "git clone" in json.loads(err.value.body)["message"]
