"""What a model build copies of a project: no other workspace, virtualenv, state store or cache; never more than its cap."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import venv

from localcml import daemon
from localcml.client import default_client
from localcml.projects import files
from localcml.workspace import LocalWorkspace
from monitoring.state.store import StateStore
from tests.local.support import wait_build


def _tree_bytes(folder):
    return sum(p.lstat().st_size for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _build(api, project_id, runtime_id, name="m", file_path="models/echo.py"):
    model = api.create_model({"project_id": project_id, "name": name}, project_id)
    body = {"file_path": file_path, "function_name": "predict", "runtime_identifier": runtime_id}
    return model, api.create_model_build(body, project_id, model.id)


def test_a_build_copies_neither_other_workspaces_nor_virtualenvs_nor_state_stores(tmp_path, project_root, ws, api):
    # a second workspace of the same project (one per example, as users keep them), with a build of its own
    other = LocalWorkspace(project_root / "ws-churn", project_root).start()
    try:
        other_api = other.client()
        runtime = other_api.list_runtimes().runtimes[0].image_identifier
        model, build = _build(other_api, other.project_id, runtime)
        assert wait_build(other_api, other.project_id, model.id, build.id).status == "built"
    finally:
        other.stop()
    venv.create(project_root / "env-py", with_pip=False)  # a virtualenv not named .venv
    # a state store still open while the build copies (its tables only in its write-ahead log yet)
    store = StateStore("sqlite:///var/churn/state.db", base_dir=project_root)
    backups = project_root / "var" / "churn" / "backups"
    backups.mkdir()
    src, dst = sqlite3.connect(project_root / "var" / "churn" / "state.db"), sqlite3.connect(backups / "state-1.db")
    src.backup(dst)
    src.close()
    dst.close()
    artifact = project_root / "var" / "churn" / "models" / "m" / "v1" / "meta.json"
    artifact.parent.mkdir(parents=True)
    artifact.write_text("{}")
    (project_root / ".cml-monitor" / "state").mkdir(parents=True)
    (project_root / ".cml-monitor" / "state" / "0123.json").write_text("{}")
    data = sqlite3.connect(project_root / "data.db")  # the user's own SQLite data: copied
    data.execute("CREATE TABLE rides (n INTEGER)")
    data.close()

    runtime = api.list_runtimes().runtimes[0].image_identifier
    try:
        model, build = _build(api, ws.project_id, runtime)
        assert wait_build(api, ws.project_id, model.id, build.id).status == "built"
    finally:
        store.close()
    snap = ws.workspace_dir / "builds" / build.id
    for left_out in ("ws-churn", "env-py", ".venv", "var/churn/state.db", ".cml-monitor"):
        assert not (snap / left_out).exists(), left_out
    assert not list((snap / "var" / "churn").glob("state.db*")) and not list(snap.glob("var/churn/backups/*"))
    assert (snap / "var" / "churn" / "models" / "m" / "v1" / "meta.json").is_file()  # deployments load artifacts
    assert (snap / "models" / "echo.py").is_file() and (snap / "data.db").is_file()
    assert _tree_bytes(project_root / "ws-churn") > 4 * _tree_bytes(snap)


def test_a_project_over_the_cap_fails_its_build_naming_the_largest_paths(tmp_path, project_root):
    big = project_root / "data" / "raw"
    big.mkdir(parents=True)
    with open(big / "events.bin", "wb") as out:
        out.truncate(3 * 2**20)
    with open(project_root / "data" / "small.bin", "wb") as out:
        out.truncate(2**19)
    workspace = project_root / ".cml-local"
    info = daemon.ensure_running(workspace, project_root, daemon_args=("--build-max-mb", "2"))
    try:
        api = default_client(url=info["url"], cml_api_key=info["api_key"])
        runtime = api.list_runtimes().runtimes[0].image_identifier
        model, build = _build(api, info["project_id"], runtime)
        assert wait_build(api, info["project_id"], model.id, build.id).status == "build failed"
        text = (workspace / "builds" / f"{build.id}.log").read_text()
        assert "over the build size cap of 2.0 MB" in text and "platform.local.build_max_mb" in text
        assert "largest: data/ 3.5 MB" in text and "largest files: data/raw/events.bin 3.0 MB" in text
        assert sorted(p.name for p in (workspace / "builds").iterdir()) == [f"{build.id}.log"]  # nothing copied
        # under the cap, the same project builds
        (big / "events.bin").unlink()
        model, build = _build(api, info["project_id"], runtime, name="m2")
        assert wait_build(api, info["project_id"], model.id, build.id).status == "built"
    finally:
        daemon.shutdown(workspace)


def test_looking_at_a_store_keeps_the_locks_this_process_holds_on_it(tmp_path):
    """Recognising a store must not close a descriptor of it: that drops this process's POSIX locks.

    A connection of this process holds a shared lock on a database in WAL mode; another process that
    closes its connection while that lock is held knows it is not the last one and leaves the log.
    Without the lock it checkpoints and deletes the log under the live connection (reads then fail
    with "database disk image is malformed", as a build inside a test's workspace once did).
    """
    db = tmp_path / "var" / "state.db"
    StateStore(f"sqlite:///{db}").close()
    held = sqlite3.connect(db)
    try:
        held.execute("PRAGMA journal_mode=WAL")
        held.execute("SELECT count(*) FROM decisions").fetchall()
        assert files.is_store(db)
        other = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT 1 FROM decisions'); c.close()"
        subprocess.run([sys.executable, "-c", other, str(db)], check=True, timeout=60)
        assert db.with_name("state.db-wal").exists(), "the other process took itself for the last one"
    finally:
        held.close()
