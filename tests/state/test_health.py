"""Store health at open: a job refuses a damaged, foreign, emptied or vanished store, and changed settings."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import pytest

from monitoring.core.db import Database
from monitoring.core.errors import EXIT_CONFIG, EXIT_STORE, ConfigChangedError, StoreError
from monitoring.state.health import StoreOpening, expected_settings, open_existing
from monitoring.state.identity import read_identity, settings
from monitoring.state.marker import marker_path, read_marker
from tests.state.support import project

PROJECT = "project-a"
T0 = 1_763_884_800_000
HOUR = 3_600_000


def opened(root: Path, cfg, project_id: str = PROJECT, evidence: str | None = None):
    return StoreOpening(cfg, root).open(project_id, lambda: evidence)


def with_history(root: Path, cfg) -> Path:
    """A store with some history (a deployment, a window, queued labels); returns its file."""
    with opened(root, cfg) as store:
        store.record_deployment(cfg.model.name, "crn-1", "m", "b1", "v1", T0, "initial")
        store.label_queue.add([(f"u{i}", "crn-1", i % 2, T0 + i, None) for i in range(300)])
        store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return root / "var" / "state.db"


@pytest.fixture
def proj(tmp_path):
    root = tmp_path / "p"
    return root, project(root)


def test_a_first_run_creates_the_store_with_identity_settings_and_marker(proj):
    root, cfg = proj
    opening = StoreOpening(cfg, root)
    assert not opening.present and not (root / "var" / "state.db").exists()  # nothing created before open
    with opening.open(PROJECT, lambda: None) as store:
        ident = read_identity(store.db)
        assert (ident.project_id, ident.model) == (PROJECT, cfg.model.name)
        assert settings(store.db) == expected_settings(cfg)
    marker = read_marker(root, cfg.model.name)
    assert (marker.store_id, marker.url, marker.project_id) == (ident.store_id, cfg.state.url, PROJECT)
    with opened(root, cfg) as again:  # the next run finds the same store
        assert read_identity(again.db) == ident


@pytest.mark.parametrize("how", ["deleted", "emptied", "var removed"])
def test_a_store_that_vanished_while_the_marker_remembers_it_is_refused_and_not_recreated(proj, how):
    root, cfg = proj
    db_file = with_history(root, cfg)
    if how == "deleted":
        db_file.unlink()
    elif how == "emptied":
        db_file.write_bytes(b"")
    else:
        shutil.rmtree(root / "var")
    with pytest.raises(StoreError, match=r"is missing or empty, but model .* had one here \(store [0-9a-f]+") as err:
        StoreOpening(cfg, root)
    assert err.value.exit_code == EXIT_STORE
    assert "state restore FILE" in err.value.action and "state rebuild" in err.value.action
    assert not db_file.exists() or db_file.stat().st_size == 0  # nothing created or written


def test_a_lost_store_is_refused_when_the_platform_shows_history(proj):
    root, cfg = proj
    opening = StoreOpening(cfg, root)  # no marker: a first run, as far as the project knows
    with pytest.raises(StoreError, match="no state store at .*, but model 'x' serves v3"):
        opening.open(PROJECT, lambda: "model 'x' serves v3 (deployment d-1), deployed by cml-monitor")
    assert not (root / "var" / "state.db").exists()


def test_a_moved_state_url_is_refused_naming_the_key(proj):
    root, cfg = proj
    with_history(root, cfg)
    moved = project(root, {"state": {"url": "sqlite:///var/elsewhere.db"}})
    with pytest.raises(ConfigChangedError, match=r"state.url changed from sqlite:///var/state.db to sqlite:///var/"):
        StoreOpening(moved, root)
    assert not (root / "var" / "elsewhere.db").exists()
    shutil.copy(root / "var" / "state.db", root / "var" / "elsewhere.db")  # moved by hand, with its history
    with opened(root, moved) as store:
        assert store.label_queue.counts()["pending"] == 300
    assert read_marker(root, cfg.model.name).url == "sqlite:///var/elsewhere.db"


def garbage_header(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"this is not sqlite")


def truncated(path: Path) -> None:
    os.truncate(path, path.stat().st_size // 2 + 100)


def garbage_middle(path: Path) -> None:
    size = path.stat().st_size
    page = 4096
    with open(path, "r+b") as f:
        f.seek((size // page // 2) * page)
        f.write(random.Random(7).randbytes(2 * page))


@pytest.mark.parametrize("damage", [garbage_header, truncated, garbage_middle], ids=lambda f: f.__name__)
def test_a_damaged_store_is_refused_before_anything_else(proj, damage):
    root, cfg = proj
    db_file = with_history(root, cfg)
    damage(db_file)
    before = db_file.read_bytes()
    with pytest.raises(StoreError, match=r"state store .*state.db is damaged: ") as err:
        StoreOpening(cfg, root)
    assert err.value.exit_code == EXIT_STORE and "state check" in err.value.action
    assert db_file.read_bytes() == before


def test_a_sqlite_file_of_something_else_is_not_taken_for_a_store(proj):
    root, cfg = proj
    (root / "var").mkdir()
    db = Database(f"sqlite:///{root / 'var' / 'state.db'}")
    db.execute("CREATE TABLE invoices (id INTEGER)")
    db.close()
    with pytest.raises(StoreError, match="is not a cml-monitor state store .*invoices"):
        StoreOpening(cfg, root)


def test_a_store_of_another_project_is_foreign(proj):
    root, cfg = proj
    with_history(root, cfg)
    with pytest.raises(StoreError, match=f"belongs to project {PROJECT} .*not to this project project-b"):
        opened(root, cfg, project_id="project-b")


def test_an_unused_store_follows_the_config(proj):
    """No history yet: a new project, model name or window length is simply taken over."""
    root, cfg = proj
    opened(root, cfg).close()
    renamed = project(root, {"model": {"name": "other-model"}, "windows": {"length": "30m"}})
    with opened(root, renamed, project_id="project-b") as store:
        ident = read_identity(store.db)
        assert (ident.project_id, ident.model) == ("project-b", "other-model")
        assert settings(store.db)["windows.length"] == str(30 * 60_000)


@pytest.mark.parametrize(
    ("overrides", "key", "action"),
    [
        (
            {"model": {"name": "renamed"}},
            "model.name changed from 'telco-cell-tower-failure' to 'renamed'",
            "set model.name back",
        ),
        ({"windows": {"length": "30m"}}, "windows.length changed from 1h to 30m", "state rebuild"),
        (
            {"platform": {"local": {"metrics_url": "sqlite:///.cml-local/other.db"}}},
            "platform.local.metrics_url changed after history exists",
            "set platform.local.metrics_url back",
        ),
        ({"platform": {"kind": "cml"}}, "platform.kind changed after history exists", "set platform.kind back"),
    ],
    ids=["model.name", "windows.length", "metrics_url", "platform.kind"],
)
def test_settings_history_depends_on_cannot_change_after_history(proj, overrides, key, action):
    root, cfg = proj
    with_history(root, cfg)
    changed = project(root, overrides)
    with pytest.raises(ConfigChangedError, match=key) as err:
        opened(root, changed)
    assert err.value.exit_code == EXIT_CONFIG and action in err.value.action
    with opened(root, cfg) as store:  # the old config still works: nothing was changed
        assert settings(store.db) == expected_settings(cfg)


def test_a_store_from_release_1_is_adopted_when_its_history_is_this_models(proj):
    root, cfg = proj
    db_file = with_history(root, cfg)
    db = Database(f"sqlite:///{db_file}")
    db.execute("DROP TABLE store_identity")  # as release 1 left it: no identity, no settings
    db.execute("DELETE FROM schema_version WHERE version > 1")
    db.close()
    with opened(root, cfg) as store:
        assert read_identity(store.db).model == cfg.model.name


def test_an_unreadable_marker_still_proves_history(proj):
    root, cfg = proj
    db_file = with_history(root, cfg)
    marker_path(root, cfg.model.name).write_text("{not json")
    db_file.unlink()
    with pytest.raises(StoreError, match="is missing or empty"):
        StoreOpening(cfg, root)


def test_read_only_commands_never_create_a_store(proj):
    root, cfg = proj
    with pytest.raises(StoreError, match="no state store at .* yet") as err:
        open_existing(cfg, root)
    assert "bootstrap" in err.value.action and not (root / "var" / "state.db").exists()


def test_the_marker_holds_no_secret(tmp_path, new_pg_database):
    url = new_pg_database("state").replace("postgres@", "postgres:s3cret-pw@")
    root = tmp_path / "p"
    cfg = project(root, {"state": {"url": url}})
    opened(root, cfg).close()
    text = marker_path(root, cfg.model.name).read_text()
    assert "s3cret-pw" not in text and json.loads(text)["url"].startswith("postgresql://postgres:***@")
