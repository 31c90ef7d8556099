"""The adapter's client construction: engine credentials first, then the explicit form CML examples use."""

from __future__ import annotations

import sys
import types

import pytest

from monitoring.cmlclient import cml
from monitoring.core.errors import ConfigError


@pytest.fixture
def cmlapi(monkeypatch):
    """A ``cmlapi`` whose default_client() behaves as the shipped one outside an engine."""
    calls = []

    def default_client(url=None, cml_api_key=None):
        calls.append((url, cml_api_key))
        if not (url and cml_api_key):
            raise ValueError("please include the keyword arguments url and cml_api_key")
        return ("client", url)

    module = types.ModuleType("cmlapi")
    module.default_client = default_client
    monkeypatch.setitem(sys.modules, "cmlapi", module)
    return calls


def test_without_engine_credentials_it_uses_the_workbench_url_and_api_v2_key(cmlapi, monkeypatch):
    monkeypatch.setenv("CDSW_API_URL", "https://ml-1234.example.site/api/v1")
    monkeypatch.setenv("CDSW_APIV2_KEY", "k" * 20)
    assert cml.api_client() == ("client", "https://ml-1234.example.site")
    assert cmlapi == [(None, None), ("https://ml-1234.example.site", "k" * 20)]


def test_without_either_it_names_the_variables_to_set(cmlapi, monkeypatch):
    monkeypatch.delenv("CDSW_API_URL", raising=False)
    monkeypatch.delenv("CDSW_APIV2_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"set CDSW_API_URL \(the workbench URL\) and CDSW_APIV2_KEY"):
        cml.api_client()
