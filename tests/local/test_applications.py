"""Applications run as real processes on CML's port variables, reachable at <subdomain>.<domain>; the 7 operations."""

from __future__ import annotations

import json

import pytest
import requests

from localcml.client.api import ApiException
from tests.local.support import wait_for

#: A dashboard like Cloudera's AMPs start: it serves on CDSW_APP_PORT, on loopback.
APP = """\
import http.server, json, os

class Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "project": os.environ["CDSW_PROJECT"],
                           "greeting": os.environ.get("GREETING"), "cwd": os.getcwd()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("127.0.0.1", int(os.environ["CDSW_APP_PORT"])), Page).serve_forever()
"""


def status_of(api, ws, app_id: str, wanted: str):
    return wait_for(
        lambda: (a := api.get_application(ws.project_id, app_id)).status == wanted and a,
        f"application {app_id} to be {wanted}",
        timeout=60,
    )


def test_an_application_serves_at_its_subdomain_and_follows_restart_stop_update_delete(
    api, ws, project_root, runtime_id
):
    (project_root / "apps").mkdir()
    (project_root / "apps" / "dash.py").write_text(APP)
    body = {
        "name": "Dashboard",
        "subdomain": "dash",
        "script": "apps/dash.py",
        "runtime_identifier": runtime_id,
        "environment": {"GREETING": "hello"},
        "cpu": "1",
        "memory": "2",
    }
    app = api.create_application(body, ws.project_id)
    assert app.status == "APPLICATION_STARTING" and app.memory == 2.0
    status_of(api, ws, app.id, "APPLICATION_RUNNING")
    url = f"http://dash.127.0.0.1:{ws.port}/report?x=1"  # <subdomain>.<domain>, resolved to the workspace
    page = requests.get(url, timeout=10).json()
    assert page == {"path": "/report?x=1", "project": "cml-monitor", "greeting": "hello", "cwd": str(project_root)}
    found = api.list_applications(ws.project_id, search_filter=json.dumps({"name": "Dashboard"})).applications
    assert [a.id for a in found] == [app.id]  # what Cloudera's monitoring AMP looks up before a restart
    api.update_application({"environment": '{"GREETING": "bonjour"}'}, ws.project_id, app.id)
    api.restart_application(ws.project_id, app.id)
    status_of(api, ws, app.id, "APPLICATION_RUNNING")
    assert requests.get(url, timeout=10).json()["greeting"] == "bonjour"
    stopped = api.stop_application(ws.project_id, app.id)
    assert stopped.status == "APPLICATION_STOPPED" and stopped.stopped_at
    assert requests.get(url, timeout=10).status_code == 404
    api.delete_application(ws.project_id, app.id)
    with pytest.raises(ApiException) as err:
        api.get_application(ws.project_id, app.id)
    assert err.value.status == 404


def test_an_application_that_exits_fails_and_subdomains_are_checked(api, ws, project_root, runtime_id):
    (project_root / "crash.py").write_text("raise SystemExit(3)\n")
    body = {"name": "crash", "subdomain": "crash", "script": "crash.py", "runtime_identifier": runtime_id}
    app = api.create_application(body, ws.project_id)
    status_of(api, ws, app.id, "APPLICATION_FAILED")
    for subdomain, status in (("crash", 409), ("Bad_Name", 400), ("modelservice", 400)):
        with pytest.raises(ApiException) as err:
            api.create_application({**body, "name": subdomain, "subdomain": subdomain}, ws.project_id)
        assert err.value.status == status, (subdomain, err.value.body)
