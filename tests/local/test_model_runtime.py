"""Model files load as CML's model runtime loads them, in replicas and in build checks alike."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from tests.local.support import call, wait_build, wait_deployment
from tests.project import REPO

#: Like Cloudera's churn AMP (``code/5_model_serve_explainer.py``): the model file changes into its
#: folder, then imports a module that sits next to it and reads a file relative to it.
SERVE = textwrap.dedent("""
    import os
    import cml.metrics_v1 as metrics
    import cml.models_v1 as models

    try:
        os.chdir("code")
    except OSError:
        pass
    from explainer import Explained

    em = Explained.load("weights.json")

    @models.cml_model(metrics=True)
    def explain(args):
        score = em.score(args)
        metrics.track_metric("input_data", args)
        metrics.track_metric("probability", score)
        return {"probability": score, "main": __name__}
""")
EXPLAINER = textwrap.dedent("""
    import json
    from dataclasses import dataclass

    @dataclass
    class Explained:
        weights: dict

        @classmethod
        def load(cls, path):
            with open(path) as f:
                return cls(json.load(f))

        def score(self, args):
            return sum(self.weights.get(k, 0.0) * float(v) for k, v in args.items())
""")


def write_churn_like(root) -> None:
    (root / "code").mkdir(exist_ok=True)
    (root / "code" / "serve.py").write_text(SERVE)
    (root / "code" / "explainer.py").write_text(EXPLAINER)
    (root / "code" / "weights.json").write_text(json.dumps({"tenure": 0.5, "charges": 0.25}))


def test_a_model_file_that_chdirs_and_imports_a_sibling_builds_and_serves(
    api, ws, project_root, model, build_of, deploy
):
    write_churn_like(project_root)
    build = build_of("code/serve.py", "explain")
    assert build.status == "built", (ws.workspace_dir / "builds" / f"{build.id}.log").read_text()
    dep = deploy(build)
    assert dep.status == "deployed"
    reply = call(ws, model.access_key, {"tenure": 2, "charges": 4})
    assert reply.status_code == 200, reply.text
    out = reply.json()["response"]
    assert out["prediction"] == {"probability": 2.0, "main": "__main__"}  # run as the kernel's main module
    log = (ws.workspace_dir / "builds" / f"{build.id}.log").read_text()
    assert "build check passed: code/serve.py:explain loads as a model replica loads it" in log


def test_what_would_not_serve_does_not_build(api, ws, project_root, build_of):
    write_churn_like(project_root)
    # the same model file without the chdir: its sibling is not on sys.path in CML's runtime either
    (project_root / "code" / "nochdir.py").write_text(SERVE.replace('os.chdir("code")', "pass"))
    build = build_of("code/nochdir.py", "explain")
    assert build.status == "build failed"
    log = (ws.workspace_dir / "builds" / f"{build.id}.log").read_text()
    assert "ModuleNotFoundError: No module named 'explainer'" in log


def test_a_deployment_created_before_its_build_is_built_waits_for_it(api, ws, project_root, model, build_of):
    write_churn_like(project_root)
    build = build_of("code/serve.py", "explain", wait=False)  # no waiting, as the lab and the API notebook do
    dep = api.create_model_deployment({"cpu": "2", "memory": "4"}, ws.project_id, model.id, build.id)
    assert dep.status == "pending" and (dep.cpu, dep.memory) == (2.0, 4.0)  # numbers as strings, as the lab sends
    assert wait_build(api, ws.project_id, model.id, build.id).status == "built"
    assert wait_deployment(api, ws.project_id, model.id, build.id, dep.id).status == "deployed"
    broken = build_of("models/broken.py", wait=False)
    doomed = api.create_model_deployment({}, ws.project_id, model.id, broken.id)
    assert wait_deployment(api, ws.project_id, model.id, broken.id, doomed.id).status == "failed"
    reason = (ws.workspace_dir / "deployments" / doomed.id / "deploy.log").read_text()
    assert f"model build {broken.id} ended with status 'build failed'" in reason
    assert call(ws, model.access_key, {"tenure": 1}).status_code == 200  # the first deployment still serves


#: A model that imports on request what its request names, as loading a pickled estimator imports
#: the modules its objects were defined in; it also says what its import path holds.
IMPORTER = textwrap.dedent("""
    import importlib
    import sys

    import cdsw
    import cml.metrics_v1
    import cmlapi

    def predict(args):
        if args.get("module"):
            importlib.import_module(args["module"])
        return {"sys_path": sys.path, "sdk": callable(cdsw.track_metric) and callable(cml.metrics_v1.track_metric)}
""")


def test_a_replica_sees_its_build_the_shim_and_installed_packages_never_the_checkout(
    api, ws, project_root, model, build_of, deploy
):
    """In CML a replica sees only its build (and the runtime's packages): a module the build lacks
    fails the request by name, even where the checkout that runs the workspace (this one) has it."""
    (project_root / "models" / "importer.py").write_text(IMPORTER)
    build = build_of("models/importer.py")
    assert build.status == "built", (ws.workspace_dir / "builds" / f"{build.id}.log").read_text()
    assert deploy(build).status == "deployed"
    reply = call(ws, model.access_key, {})
    assert reply.status_code == 200, reply.text
    seen = reply.json()["response"]
    assert seen["sdk"] is True  # the shim's cdsw, cml and cmlapi reach it (and through them the workspace's package)
    checkout = REPO.resolve()
    assert not [p for p in seen["sys_path"] if p and Path(p).resolve() == checkout], seen["sys_path"]
    # modules of the checkout, not of the build: examples/credit/trainer.py, tests/project.py
    for module, missing in (("examples.credit.trainer", "examples"), ("tests.project", "tests")):
        assert (REPO / (module.replace(".", "/") + ".py")).is_file()
        reply = call(ws, model.access_key, {"module": module})
        assert reply.status_code == 500, reply.text
        error = reply.json()["error"]
        assert error["code"] == "model.error"
        assert error["message"] == f"ModuleNotFoundError: No module named '{missing}'", error
    assert call(ws, model.access_key, {"module": "sklearn.linear_model"}).status_code == 200  # installed packages
