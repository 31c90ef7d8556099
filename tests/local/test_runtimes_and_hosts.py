"""The runtime catalogue, ``cml.data_v1`` naming its connections, and the workspace's host names resolving in engines and ``local env`` shells."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from localcml.daemon import engine_env_of
from localcml.environment import process_env, shell_exports
from localcml.runtimes.catalogue import PYTHONS


def test_the_catalogue_has_editors_kernels_and_editions_and_cloudera_filters_find_them(api):
    runtimes = api.list_runtimes(page_size=200).runtimes
    assert {r.kernel for r in runtimes} == {f"Python {v}" for v in PYTHONS}
    assert {r.editor for r in runtimes} >= {"PBJ Workbench", "JupyterLab", "Workbench"}
    assert {r.edition for r in runtimes} == {"Standard", "Nvidia GPU"}
    wanted = {"kernel": "Python 3.12", "edition": "Standard", "editor": "PBJ Workbench"}  # Cloudera's notebook filter
    found = api.list_runtimes(search_filter=json.dumps(wanted)).runtimes
    assert len(found) == 1 and "runs on this machine's Python" in found[0].description
    assert len(api.list_runtimes().runtimes) == 10 and api.list_runtimes().next_page_token  # paged, as in CML
    assert [a.component for a in api.list_runtime_addons().runtime_addons] == ["Spark"]


ENGINE = textwrap.dedent("""
    import json, os, socket, sys
    import requests
    domain = os.environ["CDSW_DOMAIN"]
    out = {"resolved": socket.getaddrinfo("modelservice." + domain.split(":")[0], 80)[0][4][0]}
    # as Cloudera's monitoring AMP builds the model endpoint: from CDSW_API_URL
    from urllib.parse import urlparse
    api = urlparse(os.environ["CDSW_API_URL"])
    reply = requests.post(f"{api.scheme}://modelservice.{api.netloc}/model", json={"accessKey": "x", "request": {}})
    out["model_status"] = reply.status_code
    try:
        import cml.data_v1 as data
        data.get_connection("spark")
    except Exception as exc:
        out["data_v1"] = str(exc)
    print(json.dumps(out))
""")


def test_engines_resolve_the_workspace_host_names_and_data_v1_fails_clearly(ws, tmp_path):
    env = process_env(ws.engine_env())
    done = subprocess.run(
        [sys.executable, "-c", ENGINE], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["resolved"] == "127.0.0.1"
    assert out["model_status"] == 404  # the workspace's model service answered: no model has that key
    assert "data connection 'spark' is not defined in the local workspace" in out["data_v1"]


def test_a_local_env_shell_resolves_them_too(ws, tmp_path):
    """``eval "$(cml-monitor local env)"`` exports the shim on PYTHONPATH; its sitecustomize installs the names."""
    info = {**ws.status(), "api_key": ws.api_key, "model_api_key": ws.model_api_key}
    exports = shell_exports(engine_env_of(info))
    script = tmp_path / "shell.sh"
    script.write_text(f'{exports}\nexec {sys.executable} -c "$1"\n')
    code = "import socket, os; print(socket.gethostbyname('monitoring.' + os.environ['CDSW_DOMAIN'].split(':')[0]))"
    done = subprocess.run(
        ["sh", str(script), code], capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"}
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "127.0.0.1"
    assert "PROJECT_OWNER" in exports and "ML_RUNTIME_KERNEL" in exports


@pytest.mark.parametrize(
    "host, local",
    [
        ("modelservice.example.com", False),
        ("localhost", False),
        ("example.127.0.0.1.evil.com", False),
        ("monitoring.127.0.0.1", True),
        ("dash.127.0.0.1:8100", True),
    ],
)
def test_only_names_under_the_workspace_domain_are_taken_over(host, local, monkeypatch):
    from localcml.core import hosts

    monkeypatch.delenv("CDSW_DOMAIN", raising=False)
    assert hosts._local(host) is local
