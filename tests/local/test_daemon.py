"""The standalone daemon (ensure_running, shutdown, reset), engine environments, activate and shell exports."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

import pytest

from localcml import daemon
from localcml.core.errors import ConfigError
from localcml.environment import PACKAGE_ROOT, SHIM_DIR, activate, python_path, shell_exports


def test_ensure_running_spawns_reuses_and_shutdown_stops(tmp_path, project_root):
    workspace = tmp_path / "w"
    info = daemon.ensure_running(workspace, project_root)
    try:
        assert info.url.startswith("http://127.0.0.1:") and info["project_id"] and info.pid != os.getpid()
        assert json.loads((workspace / "workspace.json").read_text())["pid"] == info.pid
        assert stat.S_IMODE((workspace / "secrets.json").stat().st_mode) == 0o600
        again = daemon.ensure_running(workspace, project_root)
        assert again.pid == info.pid and again.url == info.url
        env = info.env
        assert env["CDSW_API_URL"] == f"{info.url}/api/v1" and env["CDSW_APIV2_KEY"] == info.api_key
        assert env["PYTHONPATH"].split(os.pathsep)[0] == str(SHIM_DIR)
        with pytest.raises(ConfigError, match="serves project root"):
            daemon.ensure_running(workspace, tmp_path)
    finally:
        assert daemon.shutdown(workspace) is True
    assert daemon.read_info(workspace) is None
    assert daemon.shutdown(workspace) is False


def test_reset_deletes_the_workspace(tmp_path, project_root):
    workspace = tmp_path / "w"
    daemon.ensure_running(workspace, project_root)
    daemon.reset(workspace)
    assert not workspace.exists()


def test_activate_makes_cdsw_and_cmlapi_importable_in_a_fresh_process(ws):
    """A fresh interpreter (as `cml-monitor local env` users get) imports both and reaches the workspace."""
    code = (
        "import json, sys\n"
        "from localcml.environment import activate\n"
        "activate(json.loads(sys.argv[1]))\n"
        "import cdsw, cmlapi, os\n"
        "c = cmlapi.default_client()\n"
        "print(c.get_project(os.environ['CDSW_PROJECT_ID']).name, callable(cdsw.track_metric))\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(SHIM_DIR.parents[2])}
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(ws.engine_env())], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["cml-monitor", "True"]


def test_activate_puts_the_shim_first(monkeypatch, ws):
    monkeypatch.setattr(sys, "path", list(sys.path))
    for name in ws.engine_env():
        monkeypatch.setenv(name, "before")  # recorded, so teardown restores this process's environment
    activate(ws.engine_env())
    assert sys.path[0] == str(SHIM_DIR) and os.environ["CDSW_PROJECT_ID"] == ws.project_id


def test_shell_exports_quote_safely(tmp_path):
    text = shell_exports({"A": "it's $HOME; rm -rf /", "B": "plain"})
    assert text == "export A='it'\"'\"'s $HOME; rm -rf /'\nexport B='plain'\n"
    out = subprocess.run(["bash", "-c", text + 'printf %s "$A"'], capture_output=True, text=True, timeout=10)
    assert out.stdout == "it's $HOME; rm -rf /"
    with pytest.raises(ValueError, match="not a valid shell name"):
        shell_exports({"BAD NAME": "x"})


def test_engine_env_names_the_cml_variables(ws):
    env = ws.engine_env()
    assert env["CDSW_DOMAIN"] == f"127.0.0.1:{ws.port}" and env["CDSW_PROJECT"] == "cml-monitor"
    assert env["CML_MONITOR_CLOCK_FILE"] == str(ws.workspace_dir / "clock.json")
    assert env["CML_MONITOR_METRICS_URL"] == f"sqlite:///{ws.workspace_dir / 'metrics.db'}"
    assert env["CML_MONITOR_MODEL_API_KEY"] == ws.model_api_key
    assert env["PYTHONPATH"].split(os.pathsep) == [str(SHIM_DIR), str(ws.project_root)]  # not the checkout


def test_an_engine_without_the_workspace_installed_finds_its_packages_by_name_only(tmp_path):
    """The base interpreter, without this virtualenv's packages: the shim's start-up hook finds
    ``localcml``, ``cmlbase`` and ``monitoring`` in the folder holding it, and nothing else of that folder."""
    code = (
        "import importlib.util, localcml.core.hosts, monitoring.core.logs, cdsw\n"
        "print(localcml.__file__, cdsw.__file__, importlib.util.find_spec('examples'), "
        "importlib.util.find_spec('tests'))\n"
    )
    (tmp_path / "code").mkdir()
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": python_path(tmp_path / "code")}
    base = getattr(sys, "_base_executable", sys.executable)
    out = subprocess.run([base, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [str(PACKAGE_ROOT / "localcml/__init__.py"), str(SHIM_DIR / "cdsw.py"), "None", "None"]


def test_set_now_warps_the_workspace_clock_and_timestamps(ws, api):
    ws.set_now(1_800_000_000_000)
    assert abs(ws.clock.now_ms() - 1_800_000_000_000) < 5_000
    job = api.create_job(
        {
            "name": "t",
            "script": "scripts/ok.py",
            "runtime_identifier": api.list_runtimes().runtimes[0].image_identifier,
        },
        ws.project_id,
    )
    assert job.created_at.year == 2027


def test_concurrent_starts_share_one_daemon(tmp_path, project_root):
    """Five processes starting the workspace at once (five job chains, say) get the same daemon, not five."""
    import threading

    workspace = tmp_path / "w"
    barrier = threading.Barrier(5)
    infos: list = []

    def start() -> None:
        barrier.wait()
        infos.append(daemon.ensure_running(workspace, project_root))

    threads = [threading.Thread(target=start) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    try:
        assert len(infos) == 5 and len({info.pid for info in infos}) == 1
        log = (workspace / "daemon.log").read_text()
        assert log.count("local workspace serving at") == 1
    finally:
        daemon.shutdown(workspace)
