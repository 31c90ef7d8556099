"""The compact API v2 spec is kept once: the package's copy, which the workspace serves and the contract tests read."""

from __future__ import annotations

import importlib.util
import json
import os

from localcml.core.spec import SPEC_PATH
from tests.contract import swagger_check
from tests.project import REPO

#: Folders that hold no source of ours (virtualenvs, caches, workspaces, outputs).
NOT_SOURCE = {".git", ".venv", ".venv-lock", "__pycache__", ".cml-local", "demo-output", "var", "bench-output"}


def _json_files() -> list[str]:
    found = []
    for folder, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in NOT_SOURCE and not d.endswith(".egg-info")]
        found += [os.path.join(folder, f) for f in files if f.endswith(".json")]
    return found


def _head(path: str) -> str:
    with open(path, encoding="utf-8", errors="replace") as text:
        return text.read(4096)


def test_the_repository_holds_one_copy_of_the_spec_and_the_contract_tests_read_it():
    note = '"note": "Compact extract of the CML API v2 swagger spec'
    copies = sorted(os.path.relpath(p, REPO) for p in _json_files() if note in _head(p))
    assert copies == ["localcml/spec/api_v2.json"]
    assert swagger_check.load() == json.loads(SPEC_PATH.read_text())


def test_the_extract_tool_writes_that_copy_only():
    spec = importlib.util.spec_from_file_location("extract_spec", REPO / "tools" / "extract_spec.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    assert tool.OUTPUT == SPEC_PATH
    assert not hasattr(tool, "OUTPUTS")
