"""The test tiers: `make check` runs every test that starts nothing heavy, chosen by marker, not by a list."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def fast_expression() -> str:
    """The marker expression `make check` selects with (the Makefile's ``FAST``)."""
    found = re.search(r"^FAST := (.+)$", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert found, "the Makefile defines FAST, the marker expression of `make check`"
    return found.group(1).strip()


def pytest(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=240,
    )


def collected(*args: str) -> set[str]:
    run = pytest("--collect-only", "-q", *args)
    assert run.returncode in (0, 5), run.stdout + run.stderr  # 5: everything deselected
    return {line.split("[")[0] for line in run.stdout.splitlines() if "::" in line}


def test_make_check_runs_all_of_tests_by_marker_and_make_test_runs_everything():
    makefile = (REPO / "Makefile").read_text()
    assert "FAST_TESTS" not in makefile
    check = makefile.split("\ncheck:")[1].split("\n\n")[0]
    test = makefile.split("\ntest:")[1].split("\n\n")[0]
    assert '-m "$(FAST)"' in check and "tests/" not in check
    assert ' -m "' not in test  # no marker expression: every test
    assert "$(BIN)/mypy" in check and "$(BIN)/mypy" in test


def test_a_test_using_a_workspace_fixture_is_marked_heavy_and_left_out_of_make_check():
    # tests/cmlclient is no heavy folder: its workspace tests are marked by the fixture they use (`ws`)
    module = "tests/cmlclient/test_quirks.py"
    plain = "tests/cmlclient/test_adapter.py"
    fast = collected("-m", fast_expression(), module, plain)
    heavy = collected("-m", "heavy", module, plain)
    assert any(t.startswith(module) for t in heavy)
    assert not any(t.startswith(module) for t in fast)
    assert any(t.startswith(plain) for t in fast)
    assert not any(t.startswith(plain) for t in heavy)


def test_a_test_on_postgresql_or_a_browser_is_heavy_too():
    pg = "tests/decisions/test_store.py"  # parametrised on SQLite and PostgreSQL
    browser = "tests/report/test_report_render.py"
    heavy = collected("-m", "heavy", pg, browser)
    fast = collected("-m", fast_expression(), pg, browser)
    assert any(t.startswith(browser) for t in heavy) and not any(t.startswith(browser) for t in fast)
    run = pytest("--collect-only", "-q", "-m", "heavy", pg)
    assert "postgresql" in run.stdout and "sqlite" not in run.stdout


def test_in_the_fast_tier_a_test_that_starts_a_workspace_unmarked_fails_naming_the_marker(tmp_path):
    test = tmp_path / "test_sneaky.py"
    test.write_text(
        "from localcml.workspace import LocalWorkspace\n\n\n"
        "def test_starts_one(tmp_path):\n"
        "    LocalWorkspace(tmp_path / '.cml-local', tmp_path).start()\n"
    )
    run = pytest(
        "-q",
        "-p",
        "tests.conftest",
        "--rootdir",
        str(REPO),
        "-c",
        str(REPO / "setup.cfg"),
        "-m",
        fast_expression(),
        str(test),
    )
    assert run.returncode == 1, run.stdout + run.stderr
    assert "starts a local workspace but is not marked `heavy`" in run.stdout
