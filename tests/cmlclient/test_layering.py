"""Layering, enforced: one adapter imports cdsw/cmlapi (lazily), the domain imports no platform code,
jobs stay thin, and every cmlapi call passes its arguments by keyword."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "monitoring"
#: The embedded workspace's stand-ins *are* the cdsw/cmlapi/cml packages, not importers of them.
SHIM = PACKAGE / "local" / "shim"
ADAPTER = PACKAGE / "cmlclient" / "cml.py"
PLATFORM_ROOTS = ("cdsw", "cmlapi", "cml")
DOMAIN = ["data", "training", "records", "windows", "drift", "thresholds", "decisions", "store", "analyze"]


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if SHIM not in p.parents and "__pycache__" not in p.parts)


def imported(path: Path) -> set[str]:
    """Absolute module names ``path`` imports (relative imports resolved against its package)."""
    package = ".".join(path.relative_to(REPO).with_suffix("").parts[:-1])
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names |= {f"{base}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if func in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant):
                names.add(str(node.args[0].value))
    return names


def is_platform(name: str) -> bool:
    return name.split(".")[0] in PLATFORM_ROOTS


def test_the_scan_sees_the_whole_package():
    names = {p.relative_to(PACKAGE).as_posix() for p in modules()}
    assert {"cmlclient/cml.py", "cmlclient/api.py", "graph.py", "workflows/evaluate.py", "local/client.py"} <= names
    assert not any(n.startswith("local/shim/") for n in names)


def test_only_the_adapter_imports_cdsw_cmlapi_or_cml():
    offenders = {p.relative_to(REPO).as_posix(): sorted(filter(is_platform, imported(p)))
                 for p in modules() if p != ADAPTER}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_adapter_imports_them_lazily_inside_functions():
    tree = ast.parse(ADAPTER.read_text())
    top_level = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top_level |= {n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert not any(map(is_platform, top_level)), top_level
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"cdsw", "cmlapi", "cmlapi.rest"} <= literals  # the names it imports on demand


@pytest.mark.parametrize("module", DOMAIN)
def test_domain_modules_import_nothing_from_the_platform_or_the_local_workspace(module):
    names = imported(PACKAGE / f"{module}.py")
    bad = sorted(n for n in names if is_platform(n) or n.startswith(("monitoring.cmlclient", "monitoring.local")))
    assert bad == []


def test_importing_the_domain_loads_no_platform_module_even_indirectly():
    code = ("import sys\n" + "".join(f"import monitoring.{m}\n" for m in DOMAIN)
            + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cdsw', 'cmlapi', 'cml')"
              " or m.startswith(('monitoring.cmlclient', 'monitoring.local'))))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("job", sorted(p.name for p in (REPO / "jobs").glob("*.py")))
def test_jobs_are_thin_composition_roots(job):
    names = imported(REPO / "jobs" / job)
    assert not [n for n in names if n.split(".")[0] in ("pandas", "numpy", "sklearn", "requests") or is_platform(n)]
    assert {n for n in names if n.startswith("monitoring.")} <= {
        "monitoring.jobrun", "monitoring.jobrun.run_job", *{n for n in names if n.startswith("monitoring.workflows")}}


def test_outside_cml_the_adapter_says_how_to_run_locally():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDSW_", "CML_MONITOR_", "PYTHONPATH"))}
    code = ("from monitoring.cmlclient import cml\n"
            "from monitoring.errors import ConfigError\n"
            "for get in (cml.sdk, cml.api_module, cml.api_client):\n"
            "    try:\n        get()\n    except ConfigError as exc:\n        print(exc.exit_code, exc.problems[0])\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines] == ["2", "2", "2"]
    for line, name in zip(lines, ("cdsw", "cmlapi", "cmlapi")):
        assert f"cannot import {name!r}" in line
        assert "run inside a CML project" in line and "platform.kind: local" in line and "cml-monitor local env" in line


# -- keyword arguments for every cmlapi call -----------------------------------------------------
def _calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
            and n.func.attr == name and isinstance(n.func.value, ast.Name) and n.func.value.id == "self"]


def test_every_cmlapi_call_in_the_facade_passes_arguments_by_keyword():
    tree = ast.parse((PACKAGE / "cmlclient" / "api.py").read_text())
    calls, pages = _calls(tree, "_call"), _calls(tree, "pages")
    assert len(calls) >= 12 and len(pages) >= 4
    # _call(operation, method, **kwargs) and pages(operation, method, items_key, **kwargs): the cmlapi
    # method name is the only other positional; every argument of the cmlapi call itself is a keyword
    assert all(len(c.args) == 2 for c in calls) and all(len(c.args) == 3 for c in pages)
    named = [c for c in calls + pages if isinstance(c.args[1], ast.Constant)]
    passed_on = [c for c in calls if isinstance(c.args[1], ast.Name)]
    assert [c.args[1].id for c in passed_on] == ["method"]  # pages() handing its own method to _call
    methods = {c.args[1].value for c in named}
    assert {"create_job", "update_job", "create_job_run", "create_model", "create_model_build",
            "create_model_deployment", "list_model_deployments", "get_model_build"} <= methods
    direct = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute)
              and n.value.attr == "client"]
    assert direct == []  # nothing calls self.client.<method>(...) around the retry policy


def test_no_module_reaches_around_the_facade_to_the_raw_client():
    offenders = []
    for path in modules():
        if path.parent.name in ("cmlclient", "local"):
            continue
        tree = ast.parse(path.read_text())
        if any(isinstance(n, ast.Attribute) and n.attr == "client" and isinstance(n.value, ast.Attribute)
               and n.value.attr == "api" for n in ast.walk(tree)):
            offenders.append(path.relative_to(REPO).as_posix())
    assert offenders == []
