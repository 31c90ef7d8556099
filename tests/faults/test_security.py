"""Security: loopback only, callers checked, secrets never shown, SQL parameterised, safe YAML, contained paths."""

from __future__ import annotations

import ast
import json
import socket
from pathlib import Path

import pytest
import requests
import yaml

from localcml.core.errors import ConfigError as WorkspaceConfigError
from localcml.daemon import reset
from localcml.metrics.store import MetricsStore
from localcml.workspace import LocalWorkspace
from monitoring.app import graph
from monitoring.app.amp import amp_metadata
from monitoring.config.pipeline import parse_config
from monitoring.core.errors import EXIT_PLATFORM, ConfigError
from monitoring.state.store import StateStore
from tests.faults.rig import Rig, wait_for
from tests.project import REPO

HOSTILE = ["x'); DROP TABLE objects; --", "a' OR '1'='1", 'q"; DELETE FROM decisions; --', "名前 %s ? :1 \\x00"]
#: Interpolations into SQL text that were reviewed: each is built only from constants (never from input).
REVIEWED_SQL = {
    "TABLE",
    "_COLUMNS",
    "' AND '.join(where)",
    "marks",
    "lock",
    "_DEPLOY_COLS",
    "_DECISION_COLS",
    "where",
    "_WINDOW_COLS",
    "_WINDOW_PARAMS",
    "updates",
    "SQLITE_BUSY_TIMEOUT_MS",
    "_ddl(db)",
    "SCHEMA",
    "_SCHEMA.format(pk=db.autoincrement_pk)",
    "sql",
    "stmt",
    "self._sql(sql)",
    "_ENTRY_COLS",
    # the state store's own names: its tables (a backup's are only those the store has too),
    # columns and declarations of migrations, the check pragma, the busy timeout (an int)
    "table",
    "t",
    "', '.join(cols)",
    "insert",
    "column",
    "declaration",
    "baseline",
    "'integrity_check' if full else 'quick_check'",
    "self.busy_timeout_ms",
    # the dashboard's reads: constant column lists, a metric column named from the metric
    # registry (checked against it and the table), the dialect's key declaration
    "_COLS",
    "metric_column",
    "bounds_column",
    "zero_column",
    "db.autoincrement_pk",
    # the PRAGMA constants a store passes to each new SQLite connection (the metrics store's log size)
    "pragma",
    # the read-only check's query: privilege names from a constant tuple, no input
    "_PG_UNWRITABLE_TABLES",
    # the label queue's exclusion of live posting runs: one `?` placeholder per run, values bound
    "skip",
}
SQL_CALLS = {"execute", "executemany", "query", "query_one", "script"}


def listening(port: int) -> list[str]:
    """Local addresses listening on ``port`` (Linux /proc/net/tcp, hex ``0100007F:PORT`` is 127.0.0.1)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:] + Path("/proc/net/tcp6").read_text().splitlines()[1:]
    return [ln.split()[1] for ln in lines if ln.split()[3] == "0A" and ln.split()[1].endswith(f":{port:04X}")]


def test_the_workspace_and_its_replicas_listen_on_loopback_only(rig: Rig):
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp")
    assert rig.ws.server.server_address[0] == "127.0.0.1"
    assert listening(rig.ws.port) == [f"0100007F:{rig.ws.port:04X}"]
    ready = next((rig.ws.workspace_dir / "deployments" / rig.live().id).glob("replica-*.ready"))
    port = json.loads(ready.read_text())["port"]
    assert listening(port) == [f"0100007F:{port:04X}"]


def test_the_model_endpoint_refuses_bad_callers_and_records_nothing(rig: Rig):
    url, key = rig.ws.model_url, rig.model.access_key
    auth = {"Authorization": f"Bearer {rig.ws.model_api_key}"}
    request = {name: 0.5 for name in rig.cfg.model.feature_names}
    before = len(rig.records())
    cases = [
        ({"request": request}, auth, 400, "request.invalid"),  # no access key
        ({"accessKey": "m" + "0" * 31, "request": request}, auth, 404, "model.not_found"),
        ({"accessKey": key, "request": request}, {}, 401, "auth.unauthorized"),  # no model API key
        ({"accessKey": key, "request": request}, {"Authorization": "Bearer wrong-key-123"}, 401, "auth.unauthorized"),
    ]
    for body, headers, status, code in cases:
        reply = requests.post(url, json=body, headers=headers, timeout=10)
        assert (reply.status_code, reply.json()["error"]["code"]) == (status, code), body
        assert key not in reply.text and rig.ws.model_api_key not in reply.text
    assert requests.post(url, data=b"{not json", headers=auth, timeout=10).status_code == 400
    too_big = json.dumps({"accessKey": key, "request": {"x": "y" * (5 * 1024 * 1024)}}).encode()
    reply = requests.post(url, data=too_big, headers=auth, timeout=30)
    assert (reply.status_code, reply.json()["error"]["code"]) == (413, "request.too_large")
    with socket.create_connection(("127.0.0.1", rig.ws.port), timeout=10) as raw:  # would block a naive reader
        raw.sendall(b"POST /model HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
        assert raw.recv(4096).startswith(b"HTTP/1.1 400")
    assert len(rig.records()) == before
    endpoint = rig.ctx.platform.endpoint(rig.model, 10)
    try:
        assert endpoint.predict(request)[1]  # the right caller is still served
    finally:
        endpoint.close()


def test_secrets_never_appear_in_logs_exports_amp_output_or_errors(rig: Rig, caplog, monkeypatch):
    secrets = {rig.ws.api_key, rig.ws.model_api_key, rig.model.access_key}
    rig.ws.inject("api.list_models=503 x1", "endpoint=503 x2", "metrics.track_delayed_metrics=locked x2")
    status, _, run_log = rig.job_run("compute_accuracy")  # a real engine: retries and warnings logged
    assert status == "ENGINE_SUCCEEDED", run_log[-2000:]
    rig.at(1.6)
    code, _ = rig.job("simulate_traffic")
    assert code == 0
    rig.ws.inject("api.list_models=500 always")
    code, _ = rig.job("redeploy")  # fails after retries: error messages and a failed verdict
    assert code == EXIT_PLATFORM
    rig.ws.faults.clear()
    monkeypatch.setenv(rig.cfg.model.api_key_env, rig.ws.model_api_key)
    exported = yaml.safe_dump(graph.export(rig.ctx.platform.api))
    amp = yaml.safe_dump(amp_metadata(rig.cfg))
    errors = [
        requests.get(f"{rig.ws.url}/api/v2/projects", headers={"authorization": "Bearer wrong"}, timeout=10).text,
        requests.post(rig.ws.model_url, json={"accessKey": rig.model.access_key + "x", "request": {}}, timeout=10).text,
    ]
    files = [
        p
        for pattern in ("runs/*.log", "builds/*.log", "deployments/*/*.log")
        for p in rig.ws.workspace_dir.glob(pattern)
    ]
    assert len(files) >= 4
    texts = {
        "caplog": caplog.text,
        "job output": rig.last_log,
        "export": exported,
        "amp": amp,
        **{f"error {i}": e for i, e in enumerate(errors)},
        **{str(p): p.read_text() for p in files},
    }
    leaks = [(where, s[:6]) for where, text in texts.items() for s in secrets if s in text]
    assert not leaks, leaks


def test_hostile_names_are_data_not_sql(rig: Rig):
    api = rig.ctx.platform.api
    runtime = api.resolve_runtime(None)
    for name in HOSTILE:
        model = api.create_model(name, "hostile", True)
        assert api.find_model(name) == model and api.find_model(name + "'") is None
        api.create_job(
            {
                "project_id": api.project_id,
                "name": name,
                "script": "jobs/simulate_traffic.py",
                "runtime_identifier": runtime,
            }
        )
    assert [j.name for j in api.jobs()][-len(HOSTILE) :] == HOSTILE
    assert rig.live() is not None and len(rig.builds()) == 1  # the workspace's own tables are intact
    store, decisions = rig.ctx.store, len(rig.ctx.store.list_decisions(limit=1000))
    for i, name in enumerate(HOSTILE):
        store.record_deployment(name, f"crn:{name}", name, name, name, i, name)
        assert store.current_deployment(name).deployment_crn == f"crn:{name}"
        assert store.windows(model=name) == [] and store.latest_decision(name) is None
    assert len(store.list_decisions(limit=1000)) == decisions
    metrics = MetricsStore(rig.ws.metrics_url)
    try:
        assert all(metrics.read(deployment_crn=name) == [] for name in HOSTILE)
        assert metrics.count() == len(rig.records()) > 0
    finally:
        metrics.close()


def _sql_sites():
    for path in sorted(p for folder in ("monitoring", "cmlbase") for p in (REPO / folder).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in SQL_CALLS
                and node.args
            ):
                yield path.relative_to(REPO), node.lineno, node.args[0]


def test_every_sql_statement_is_parameterised():
    """SQL text is constant; the only interpolations are reviewed names built from constants."""
    unreviewed = []
    for path, line, sql in _sql_sites():
        if isinstance(sql, ast.Constant):
            continue
        if isinstance(sql, ast.JoinedStr):
            parts = [ast.unparse(v.value) for v in sql.values if isinstance(v, ast.FormattedValue)]
        else:
            parts = [ast.unparse(sql)]
        unreviewed += [f"{path}:{line}: {p}" for p in parts if p not in REVIEWED_SQL]
        if isinstance(sql, ast.BinOp) and isinstance(sql.op, ast.Mod):
            unreviewed.append(f"{path}:{line}: %-formatting of SQL")
    assert not unreviewed, (
        "SQL text built from something not reviewed; use ? parameters, or review it and add it "
        f"to REVIEWED_SQL: {unreviewed}"
    )


def test_only_safe_yaml_loading():
    unsafe = []
    for folder in ("monitoring", "jobs", "bench", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "yaml"
                    and node.attr in ("load", "load_all", "unsafe_load", "full_load", "Loader", "UnsafeLoader")
                ):
                    unsafe.append(f"{path.relative_to(REPO)}:{node.lineno}: yaml.{node.attr}")
    assert not unsafe, unsafe


@pytest.mark.heavy  # starts a local workspace
def test_workspace_paths_from_callers_cannot_escape_the_project(tmp_path):
    project = tmp_path / "project"
    (project / "models").mkdir(parents=True)
    (project / "models" / "ok.py").write_text("def predict(args):\n    return 1\n")
    outside = tmp_path / "outside.py"
    outside.write_text("def predict(args):\n    return 'escaped'\n")
    (project / "models" / "link.py").symlink_to(outside)
    with LocalWorkspace(project / ".cml-local", project, health_timeout=30) as ws:
        api = ws.client()
        runtime = api.list_runtimes().runtimes[0].image_identifier
        model = api.create_model({"name": "m"}, ws.project_id)
        for path in ("../outside.py", "/etc/passwd.py", "models/../../outside.py"):
            with pytest.raises(Exception, match="must be a path inside the project") as caught:
                api.create_model_build(
                    {"file_path": path, "function_name": "predict", "runtime_identifier": runtime},
                    ws.project_id,
                    model.id,
                )
            assert caught.value.status == 400
            with pytest.raises(Exception, match="must be a path inside the project"):
                api.create_job({"name": f"job {path}", "script": path, "runtime_identifier": runtime}, ws.project_id)
        build = api.create_model_build(
            {"file_path": "models/link.py", "function_name": "predict", "runtime_identifier": runtime},
            ws.project_id,
            model.id,
        )
        done = wait_for(
            lambda: (
                (b := api.get_model_build(ws.project_id, model.id, build.id)).status not in ("pending", "building")
                and b
            ),
            "the build check",
        )
        assert done.status == "build failed"
        assert "is outside the project" in (ws.workspace_dir / "builds" / f"{build.id}.log").read_text()


def test_reset_refuses_to_delete_a_directory_that_is_not_a_workspace(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(WorkspaceConfigError, match="does not look like a local workspace directory .*precious.txt"):
        reset(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.parametrize(
    "section, key, value",
    [
        ("state", "artifacts_dir", "../../elsewhere"),
        ("state", "url", "sqlite:///../../elsewhere.db"),
        ("platform.local", "workspace_dir", "/tmp"),
        ("model", "serving_file", "../outside.py"),
    ],
)
def test_config_paths_cannot_escape_the_project(section, key, value):
    data = yaml.safe_load((REPO / "config/pipeline.yaml").read_text())
    node = data
    for part in section.split("."):
        node = node[part]
    node[key] = value
    with pytest.raises(ConfigError, match=f"{section}.{key}"):
        parse_config(data, "pipeline.yaml")


def test_state_store_urls_with_passwords_are_redacted_in_errors(tmp_path):
    with pytest.raises(ConfigError) as caught:
        StateStore("mysql://admin:hunter2-secret@db/x", base_dir=tmp_path)
    assert "hunter2-secret" not in str(caught.value) and "***" in str(caught.value)
