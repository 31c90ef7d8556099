"""The ``cml`` tier's gate: real CML only, never the embedded workspace or its shim (runs everywhere)."""

from __future__ import annotations

import configparser
import sys

from tests.cml.conftest import SHIM, cml_unavailable_reason
from tests.cml.test_real_workspace import REPO


def test_the_cml_marker_is_registered_for_strict_markers():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert "--strict-markers" in cfg["tool:pytest"]["addopts"]
    assert any(line.startswith("cml:") for line in cfg["tool:pytest"]["markers"].splitlines())


def test_outside_cml_the_tier_is_skipped_with_a_reason(monkeypatch):
    monkeypatch.delenv("CDSW_PROJECT_ID", raising=False)
    assert "CDSW_PROJECT_ID is not set" in cml_unavailable_reason()


def test_the_local_workspace_does_not_count_as_cml(monkeypatch, tmp_path):
    monkeypatch.setenv("CDSW_PROJECT_ID", "local-project")
    monkeypatch.setenv("CML_MONITOR_WORKSPACE", str(tmp_path))
    assert "embedded local workspace" in cml_unavailable_reason()
    monkeypatch.delenv("CML_MONITOR_WORKSPACE")
    monkeypatch.setattr(sys, "path", [str(SHIM), *sys.path])
    for name in ("cmlapi", "cdsw"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert "resolves to the local workspace's shim" in cml_unavailable_reason()


def test_without_cmlapi_the_reason_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setenv("CDSW_PROJECT_ID", "some-project")
    monkeypatch.delenv("CML_MONITOR_WORKSPACE", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if str(SHIM) not in p])
    for name in ("cmlapi", "cdsw"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    assert "api/v2/python.tar.gz" in cml_unavailable_reason()
