"""Fixtures: a bootstrapped template project (once per session) and a fresh copy with a started workspace per test."""

from __future__ import annotations

import pytest

from tests.faults.rig import build_template, rig_from


@pytest.fixture(scope="session")
def template(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults-template") / "project"
    root.mkdir()
    build_template(root)
    return root


@pytest.fixture
def rig(template, tmp_path):
    with rig_from(template, tmp_path / "project") as made:
        yield made
