"""Fixtures: a pipeline on a fresh in-process local workspace per call of ``make_pipeline``."""

from __future__ import annotations

import contextlib

import pytest

from tests.integration.support import Pipeline, running_pipeline


@pytest.fixture
def make_pipeline(tmp_path, monkeypatch):
    """``make_pipeline(overrides, do_bootstrap=True, example=None)`` -> Pipeline on a fresh workspace (stopped
    after the test); ``example`` starts from ``examples/<example>/pipeline.yaml``."""
    with contextlib.ExitStack() as started:
        count = iter(range(1_000))

        def build(overrides: dict | None = None, do_bootstrap: bool = True, example: str | None = None) -> Pipeline:
            root = tmp_path / f"project{next(count)}"
            return started.enter_context(running_pipeline(root, monkeypatch, overrides, do_bootstrap, example))

        yield build
