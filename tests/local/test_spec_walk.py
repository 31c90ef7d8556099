"""Every operation of the API v2 spec is served: implemented, or HTTP 501 naming itself; the coverage page is current."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from localcml import coverage
from localcml.client.api import ApiException
from localcml.core.spec import operations
from localcml.workspace import LocalWorkspace

REPO = Path(__file__).resolve().parents[2]
IMPLEMENTED = {row[1] for row in coverage.rows() if row[4]}


@pytest.fixture(scope="module")
def walker(tmp_path_factory):
    """One workspace for the whole walk: the calls name objects that do not exist, so they change nothing."""
    root = tmp_path_factory.mktemp("walk")
    (root / "project").mkdir()
    ws = LocalWorkspace(root / "w", root / "project").start()
    yield ws.client()
    ws.stop()


def _arguments(op) -> tuple[list, dict]:
    """Positional arguments as the generated client takes them: body first, then path parameters."""
    args: list = [{}] if op.body else []
    args += [f"no-such-{p.replace('.', '-')}" for p in op.path_params]
    return args, {}


@pytest.mark.parametrize("op_id", sorted(operations()))
def test_every_operation_is_a_client_method_and_is_answered(walker, op_id):
    op = operations()[op_id]
    method = getattr(walker, op.name)  # never an AttributeError
    args, kwargs = _arguments(op)
    try:
        method(*args, **kwargs)
    except ApiException as exc:
        body = json.loads(exc.body)
        assert set(body) == {"error", "code", "message", "details"}, body
        if op_id in IMPLEMENTED:
            assert exc.status in (400, 404, 409), (op_id, exc.status, body)  # refused on its merits
        else:
            assert exc.status == 501 and body["code"] == 12, (op_id, body)
            assert f"{op_id} ({op.name}) is not implemented by the local CML workspace: " in body["message"]
        return
    assert op_id in IMPLEMENTED, f"{op_id} answered 2xx but the coverage table says it is not implemented"


def test_the_coverage_page_is_generated_from_the_spec_and_up_to_date():
    page = REPO / "docs" / "local-workspace-coverage.md"
    assert page.read_text() == coverage.markdown(), (
        "run: python -m localcml.coverage > docs/local-workspace-coverage.md"
    )
    assert {row[1] for row in coverage.rows()} == set(operations())  # every operation has a row, once
    assert len(coverage.rows()) == len(operations())
