"""A real model replica process: CML's endpoint protocol, auth, limits, metrics, loopback, shutdown."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid as uuid_lib
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from cmlbase.clock import WarpClock
from localcml.metrics import sdk
from localcml.metrics.server import MetricsServer
from localcml.metrics.store import MetricsStore

REPO = Path(__file__).resolve().parents[2]
SHIM = REPO / "localcml" / "shim"
T0 = 1_800_000_000_000
ACCESS_KEY, API_KEY = "mak-0123456789abcdef", "mapikey-fedcba9876543210"
DEP, BUILD, MODEL = (
    "crn:cdp:ml:local:a:workspace:w/dep-7",
    "crn:cdp:ml:local:a:workspace:w/build-7",
    "crn:cdp:ml:local:a:workspace:w/model-7",
)
PREDICT = textwrap.dedent("""
    import os
    import cdsw

    @cdsw.model_metrics
    def predict(args):
        if args.get("fail"):
            raise RuntimeError("boom, key was " + os.environ["CML_MONITOR_MODEL_ACCESS_KEY"])
        cdsw.track_metric("input_features", args)
        cdsw.track_metric("prediction", int(args["x"] > 0))
        return int(args["x"] > 0)

    def where(args):
        return {"cwd": os.getcwd()}
""")


@dataclass
class Replica:
    proc: subprocess.Popen
    port: int
    log: Path
    ready: Path
    store_url: str
    metrics: MetricsServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=30)
        if self.metrics is not None:
            self.metrics.stop()
        return code


def _env(tmp: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CML_MONITOR_", "CDSW_"))}
    clock = WarpClock(tmp / "clock.json")
    clock.set_now(T0)
    env.update(
        PYTHONPATH=f"{SHIM}{os.pathsep}{REPO}",
        CML_MONITOR_WORKSPACE=str(tmp),
        CML_MONITOR_CLOCK_FILE=str(clock.path),
        CML_MONITOR_DEPLOYMENT_CRN=DEP,
        CML_MONITOR_BUILD_CRN=BUILD,
        CML_MONITOR_MODEL_CRN=MODEL,
        CML_MONITOR_MODEL_ACCESS_KEY=ACCESS_KEY,
    )
    env.update(extra)
    return env


def launch(
    tmp: Path, build: Path, file: str = "predict.py", function: str = "predict", host: str = "127.0.0.1", **env: str
) -> tuple[subprocess.Popen, Path, Path]:
    """Start ``python -m localcml.models.replica``; returns the process, its log and its ready file."""
    tag = uuid_lib.uuid4().hex[:8]
    log, ready = tmp / f"replica-{tag}.log", tmp / f"ready-{tag}.json"
    args = [
        sys.executable,
        "-m",
        "localcml.models.replica",
        "--build-dir",
        str(build),
        "--file",
        file,
        "--function",
        function,
        "--host",
        host,
        "--port",
        "0",
        "--ready-file",
        str(ready),
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(args, env=_env(tmp, **env), stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    return proc, log, ready


def start(tmp: Path, build: Path, **kw: str) -> Replica:
    """A replica whose SDK reaches a metrics service over ``tmp/metrics.db`` (the workspace's, in a workspace)."""
    store_url = f"sqlite:///{tmp / 'metrics.db'}"
    metrics = MetricsServer(MetricsStore(store_url), "replica-test-key", WarpClock(tmp / "clock.json")).start()
    proc, log, ready = launch(tmp, build, CDSW_DOMAIN=metrics.domain, CDSW_APIV2_KEY="replica-test-key", **kw)
    deadline = time.monotonic() + 30
    while not ready.exists():  # a real process must start: poll, bounded
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"model server did not become ready:\n{log.read_text()}")
        time.sleep(0.02)
    info = json.loads(ready.read_text())
    assert info["pid"] == proc.pid
    return Replica(proc, info["port"], log, ready, store_url, metrics)


@pytest.fixture(scope="module")
def build(tmp_path_factory) -> Path:
    build = tmp_path_factory.mktemp("build")
    (build / "predict.py").write_text(PREDICT)
    return build


@pytest.fixture(scope="module")
def replica(tmp_path_factory, build):
    r = start(tmp_path_factory.mktemp("open"), build)
    yield r
    r.stop()


@pytest.fixture(scope="module")
def auth_replica(tmp_path_factory, build):
    r = start(
        tmp_path_factory.mktemp("auth"), build, CML_MONITOR_AUTH_ENABLED="true", CML_MONITOR_MODEL_API_KEY=API_KEY
    )
    yield r
    r.stop()


@pytest.fixture
def domain(monkeypatch):
    def point_at(r: Replica) -> None:
        monkeypatch.setenv("CDSW_DOMAIN", f"127.0.0.1:{r.port}")

    return point_at


def post(r: Replica, body, headers=None, path="/model") -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        r.url + path, data=data, headers={"Content-Type": "application/json", **(headers or {})}, timeout=30
    )


def test_predict_answers_cmls_envelope_and_writes_one_metrics_record(replica):
    resp = post(replica, {"accessKey": ACCESS_KEY, "request": {"x": 0.5, "id": "r1"}})

    assert resp.status_code == 200 and resp.headers["Content-Type"] == "application/json"
    body = resp.json()
    assert set(body) == {"success", "response"} and body["success"] is True
    assert set(body["response"]) == {"prediction", "uuid"} and body["response"]["prediction"] == 1
    store = MetricsStore(replica.store_url)
    [record] = [r for r in store.read(DEP) if r["predictionUuid"] == body["response"]["uuid"]]
    store.close()
    assert (record["modelBuildCrn"], record["modelCrn"]) == (BUILD, MODEL)
    assert record["metrics"] == {"input_features": {"x": 0.5, "id": "r1"}, "prediction": 1}
    assert T0 <= record["startTimeStampMs"] <= record["endTimeStampMs"] < T0 + 60_000


def test_root_path_is_accepted_too(replica):
    resp = post(replica, {"accessKey": ACCESS_KEY, "request": {"x": -1}}, path="/")

    assert resp.status_code == 200 and resp.json()["response"]["prediction"] == 0


def test_call_model_returns_the_whole_endpoint_json(replica, domain):
    domain(replica)

    out = sdk.call_model(model_access_key=ACCESS_KEY, ipt={"x": 3})

    assert out["success"] is True and out["response"]["prediction"] == 1
    assert len(out["response"]["uuid"]) == 36


def test_wrong_access_key_is_refused_without_echoing_keys(replica):
    resp = post(replica, {"accessKey": "not-the-key", "request": {"x": 1}})

    assert resp.status_code == 403
    assert resp.json() == {
        "success": False,
        "error": {"code": "model.access_key_invalid", "message": "accessKey is not this model's access key"},
    }
    assert post(replica, {"request": {"x": 1}}).status_code == 403


def test_auth_requires_the_bearer_model_api_key(auth_replica, domain):
    good = {"accessKey": ACCESS_KEY, "request": {"x": 1}}

    missing = post(auth_replica, good)
    wrong = post(auth_replica, good, {"Authorization": "Bearer wrong-key-123"})
    ok = post(auth_replica, good, {"Authorization": f"Bearer {API_KEY}"})

    assert missing.status_code == 401 and missing.json()["error"]["code"] == "auth.unauthorized"
    assert wrong.status_code == 401 and API_KEY not in wrong.text
    assert ok.status_code == 200 and ok.json()["success"] is True
    domain(auth_replica)
    assert sdk.call_model(ACCESS_KEY, {"x": 1}, API_KEY)["response"]["prediction"] == 1
    assert sdk.call_model(ACCESS_KEY, {"x": 1})["error"]["code"] == "auth.unauthorized"


@pytest.mark.parametrize(
    "body, status, code",
    [
        (b"this is not json", 400, "request.invalid"),
        (b'{"accessKey": "k"}', 400, "request.invalid"),
        (b'{"accessKey": "k", "request": [1, 2]}', 400, "request.invalid"),
        (b"x" * (5 * 1024 * 1024 + 1), 413, "request.too_large"),
    ],
)
def test_malformed_and_oversized_bodies_are_refused(replica, body, status, code):
    resp = post(replica, body)

    assert resp.status_code == status
    assert resp.json()["success"] is False and resp.json()["error"]["code"] == code


def test_model_error_is_a_500_with_the_message_and_no_secret(replica):
    resp = post(replica, {"accessKey": ACCESS_KEY, "request": {"fail": True}})

    assert resp.status_code == 500
    error = resp.json()["error"]
    assert error["code"] == "model.error" and error["message"].startswith("RuntimeError: boom, key was ***")
    assert ACCESS_KEY not in resp.text


def test_health_and_unknown_paths(replica):
    assert requests.get(replica.url + "/health", timeout=10).json() == {"status": "ok"}
    assert requests.get(replica.url + "/nope", timeout=10).status_code == 404


def test_listens_on_loopback_only(replica):
    tcp = Path("/proc/net/tcp")
    if not tcp.exists():
        pytest.skip("needs Linux /proc/net/tcp")
    listening = [line.split()[1] for line in tcp.read_text().splitlines()[1:] if line.split()[3] == "0A"]
    assert f"0100007F:{replica.port:04X}" in listening
    assert not [a for a in listening if a.endswith(f":{replica.port:04X}") and a != f"0100007F:{replica.port:04X}"]


def test_logs_one_line_per_request_without_secrets(auth_replica):
    post(auth_replica, {"accessKey": ACCESS_KEY, "request": {"x": 1}}, {"Authorization": f"Bearer {API_KEY}"})
    requests.get(auth_replica.url + "/health?accessKey=" + ACCESS_KEY, timeout=10)

    text = auth_replica.log.read_text()
    assert "request method=POST path=/model status=200 ms=" in text
    assert "request method=GET path=/health status=200 ms=" in text
    assert ACCESS_KEY not in text and API_KEY not in text


def test_sigterm_stops_cleanly_and_removes_the_ready_file(tmp_path, build):
    r = start(tmp_path, build)
    assert post(r, {"accessKey": ACCESS_KEY, "request": {"x": 1}}).status_code == 200

    assert r.stop() == 0
    assert not r.ready.exists() and "stopped" in r.log.read_text()


@pytest.mark.parametrize(
    "kw, env, message",
    [
        ({"host": "0.0.0.0"}, {}, "binds loopback only"),
        ({}, {"CML_MONITOR_MODEL_ACCESS_KEY": ""}, "CML_MONITOR_MODEL_ACCESS_KEY is not set"),
        ({}, {"CML_MONITOR_AUTH_ENABLED": "true"}, "CML_MONITOR_MODEL_API_KEY is not set"),
    ],
)
def test_bad_arguments_or_environment_exit_2(tmp_path, build, kw, env, message):
    proc, log, ready = launch(tmp_path, build, **kw, **env)

    assert proc.wait(timeout=30) == 2
    assert message in log.read_text() and not ready.exists()


def test_missing_function_exits_1_naming_it(tmp_path, build):
    proc, log, ready = launch(tmp_path, build, function="no_such_fn")

    assert proc.wait(timeout=30) == 1
    assert "defines no function 'no_such_fn'" in log.read_text() and not ready.exists()


def test_serves_the_build_snapshot_from_the_build_dir(tmp_path, build):
    snapshot = tmp_path / "snapshot"
    shutil.copytree(REPO / "monitoring", snapshot / "monitoring", ignore=shutil.ignore_patterns("__pycache__"))
    (snapshot / "monitoring" / "build_probe.py").write_text(
        "import os\nimport monitoring\n\ndef probe(args):\n"
        "    return {'cwd': os.getcwd(), 'package': os.path.dirname(monitoring.__file__)}\n"
    )
    r = start(tmp_path, snapshot, file="monitoring/build_probe.py", function="probe")
    try:
        out = post(r, {"accessKey": ACCESS_KEY, "request": {}}).json()["response"]
    finally:
        r.stop()

    assert out == {"cwd": str(snapshot.resolve()), "package": str((snapshot / "monitoring").resolve())}


def test_working_directory_is_the_build_dir(build, tmp_path):
    r = start(tmp_path, build, function="where")
    try:
        assert post(r, {"accessKey": ACCESS_KEY, "request": {}}).json()["response"] == {"cwd": str(build.resolve())}
    finally:
        r.stop()
