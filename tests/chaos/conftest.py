"""Fixtures of the chaos suite: a small project and a workspace daemon that is torn down and checked for orphans."""

from __future__ import annotations

import pytest

from tests.chaos.daemon import Daemon
from tests.chaos.processes import assert_no_processes
from tests.faults.conftest import rig, template  # noqa: F401 - the bootstrapped project of the fault matrix
from tests.integration.conftest import make_pipeline  # noqa: F401 - an example project on a fresh workspace
from tests.local.support import make_tree


@pytest.fixture
def project_root(tmp_path):
    return make_tree(tmp_path / "project")


@pytest.fixture
def gates(tmp_path):
    """The directory of the gates of one test (outside the project: a build never copies them)."""
    folder = tmp_path / "gates"
    folder.mkdir()
    return folder


@pytest.fixture
def start_daemon(tmp_path, project_root):
    """``start_daemon(*args)`` -> a started ``Daemon`` of W = project/.cml-local; every process of W ends with the test."""
    started: list[Daemon] = []

    def start(*args: str) -> Daemon:
        daemon = Daemon(project_root / ".cml-local", project_root, args).up()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.down()
        assert_no_processes(daemon.workspace_dir)
