"""Projects are isolated: own directory, engine variables, jobs, models and applications; update and delete."""

from __future__ import annotations

import json
import subprocess

import pytest

from localcml.client.api import ApiException
from localcml.environment import SHIM_DIR
from tests.local.support import call, wait_build, wait_deployment, wait_run

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


def test_git_and_fork_templates_copy_files_and_a_template_not_shipped_is_501(api, ws, tmp_path):
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
    assert err.value.status == 501 and "'Churn Predictor' is a CML template" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        api.create_project({"name": "gone", "template": "git", "git_url": str(tmp_path / "missing")})
    assert err.value.status == 400 and "git clone" in json.loads(err.value.body)["message"]


STARTERS = {
    "Python": {".gitignore", "README.md", "analysis.py", "cdsw-build.sh", "fit.py", "predict.py", "requirements.txt"},
    "R": {".gitignore", "README.md", "analysis.R", "fit.R", "predict.R"},
    "PySpark": {".gitignore", "README.md", "pi.py"},
    "Scala": {".gitignore", "README.md", "pi.scala"},
}


def test_built_in_templates_create_projects_with_their_starter_files(api, ws, runtime_id, monkeypatch):
    """Cloudera's API v2 notebook creates its project with template "Python"; it works as in CML."""
    monkeypatch.syspath_prepend(str(SHIM_DIR))
    import cmlapi

    body = cmlapi.CreateProjectRequest(name="api-demo", description="from the notebook", template="Python")
    project = api.create_project(body)
    folder = ws.workspace_dir / "projects" / project.id
    assert {p.name for p in folder.iterdir()} == STARTERS["Python"]
    # the template's own steps: fit.py as a job, then predict.py as a model that answers
    job = api.create_job({"name": "fit", "script": "fit.py", "runtime_identifier": runtime_id}, project.id)
    run = api.create_job_run({}, project.id, job.id)
    assert wait_run(api, project.id, job.id, run.id).status == "ENGINE_SUCCEEDED"
    assert (folder / "model.pkl").is_file()
    model = api.create_model({"project_id": project.id, "name": "iris"}, project.id)
    build = api.create_model_build(
        {"file_path": "predict.py", "function_name": "predict", "runtime_identifier": runtime_id}, project.id, model.id
    )
    assert wait_build(api, project.id, model.id, build.id).status == "built"
    dep = api.create_model_deployment({"replicas": 1}, project.id, model.id, build.id)
    assert wait_deployment(api, project.id, model.id, build.id, dep.id).status == "deployed"
    answer = call(ws, model.access_key, {"petal_length": 4.5}).json()
    assert answer["success"] is True and 1.3 < answer["response"]["petal_width"] < 1.6

    for template in ("R", "pyspark", "Scala"):  # names are matched without regard to case
        made = api.create_project({"name": f"t-{template}", "template": template})
        shown = next(t for t in STARTERS if t.lower() == template.lower())
        assert {p.name for p in (ws.workspace_dir / "projects" / made.id).iterdir()} == STARTERS[shown]
    for template in ("Blank", "local"):
        made = api.create_project({"name": f"t-{template}", "template": template})
        assert list((ws.workspace_dir / "projects" / made.id).iterdir()) == []


def test_an_unknown_template_is_cmls_400_naming_the_templates(api, ws):
    with pytest.raises(ApiException) as err:
        api.create_project({"name": "typo", "template": "Pyton"})
    message = json.loads(err.value.body)["message"]
    assert err.value.status == 400 and "template 'Pyton' is not a project template" in message
    assert "Python, R, PySpark, Scala" in message
    assert [p.name for p in api.list_projects().projects] == ["cml-monitor"]  # nothing was created
    assert not (ws.workspace_dir / "projects").exists() or list((ws.workspace_dir / "projects").iterdir()) == []
