"""Helpers for the local workspace tests: a small project tree and bounded polling."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.waiting import wait_for

TERMINAL = {"ENGINE_SUCCEEDED", "ENGINE_FAILED", "ENGINE_TIMEDOUT", "ENGINE_STOPPED", "ENGINE_SKIPPED"}

FILES = {
    "scripts/ok.py": "print('ok run finished')\n",
    "scripts/fail.py": "print('about to fail')\nraise RuntimeError('boom')\n",
    "scripts/exit0.py": "import sys\nprint('exiting with 0')\nsys.exit(0)\n",
    "scripts/block.py": "import threading\nprint('blocking', flush=True)\nthreading.Event().wait()\n",
    "scripts/mark.py": (
        "import os\nwith open(os.environ['MARK_FILE'], 'a') as f:\n    f.write(os.environ['MARK'] + '\\n')\n"
    ),
    "scripts/probe.py": """\
import json, os, sys
import cmlapi
project = cmlapi.default_client().get_project(os.environ["CDSW_PROJECT_ID"])
out = {"argv": sys.argv, "has_file": "__file__" in globals(), "name": __name__, "cwd": os.getcwd(),
       "env": {k: v for k, v in os.environ.items() if k.startswith(("CDSW_", "CML_MONITOR_", "FOO", "BAR"))},
       "project_name": project.name}
with open(os.environ["PROBE_OUT"], "w") as f:
    json.dump(out, f)
print("probe done")
""",
    "models/echo.py": "def predict(args):\n    return {'echo': args}\n",
    "models/gate.py": "def predict(args):\n    with open(args['fifo']) as f:\n        return {'released': f.read()}\n",
    "models/hang.py": (
        "import os\nif os.environ.get('HANG_FIFO'):\n    open(os.environ['HANG_FIFO']).read()\n\n"
        "def predict(args):\n    return 1\n"
    ),
    "models/broken.py": "raise ImportError('a dependency is missing')\n",
    "models/metered.py": """\
import cdsw

@cdsw.model_metrics
def predict(args):
    cdsw.track_metric("input_features", args)
    cdsw.track_metric("prediction", args["x"] * 2)
    return args["x"] * 2
""",
    "models/reader.py": """\
import json, os, cdsw
result = cdsw.read_metrics(model_deployment_crn=os.environ["DEPLOYMENT_CRN"])
with open(os.environ["PROBE_OUT"], "w") as f:
    json.dump(result, f)
""",
    # things a build snapshot must leave out
    ".git/HEAD": "ref: refs/heads/main\n",
    ".venv/pyvenv.cfg": "home = /usr\n",
    "models/__pycache__/stale.cpython-311.pyc": "",
    "var/models/v1.json": "{}",
    "demo-output/summary.json": "[]",
    "cml_monitor.egg-info/PKG-INFO": "",
}


def make_tree(root: Path) -> Path:
    for rel, text in FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def wait_run(api, project_id: str, job_id: str, run_id: str, timeout: float = 30.0):
    def done():
        run = api.get_job_run(project_id, job_id, run_id)
        return run if run.status in TERMINAL else None

    return wait_for(done, f"run {run_id} to finish", timeout)


def runs_of(api, project_id: str, job_id: str) -> list:
    return api.list_job_runs(project_id, job_id, page_size=100).job_runs


def wait_build(api, project_id: str, model_id: str, build_id: str, timeout: float = 60.0):
    def done():
        build = api.get_model_build(project_id, model_id, build_id)
        return build if build.status not in ("pending", "building") else None

    return wait_for(done, f"build {build_id}", timeout)


def wait_deployment(api, project_id: str, model_id: str, build_id: str, dep_id: str, timeout: float = 60.0):
    def done():
        dep = api.get_model_deployment(project_id, model_id, build_id, dep_id)
        return dep if dep.status not in ("pending", "deploying") else None

    return wait_for(done, f"deployment {dep_id}", timeout)


def call(ws, access_key, request, token=None):
    """POST one model request through the workspace's model service (with the model API key)."""
    headers = {"Authorization": f"Bearer {token or ws.model_api_key}"}
    return requests.post(ws.model_url, json={"accessKey": access_key, "request": request}, headers=headers, timeout=30)
