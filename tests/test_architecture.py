"""The architecture, enforced: import-linter contracts (and that they can fail), thin jobs, the adapter."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
ADAPTER = REPO / "monitoring" / "cmlclient" / "cml.py"
PLATFORM_ROOTS = ("cdsw", "cmlapi", "cml")


def contracts() -> dict[str, str]:
    """Contract id -> name, as setup.cfg declares them."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    prefix = "importlinter:contract:"
    return {s[len(prefix) :]: parser[s]["name"] for s in parser.sections() if s.startswith(prefix)}


CONTRACTS = contracts()


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


def imported(path: Path) -> set[str]:
    """Absolute module names ``path`` imports, statically."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names.add(node.module or "")
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return names


def test_the_import_contracts_hold():
    out = lint_imports(REPO)
    assert out.returncode == 0, out.stdout + out.stderr
    report = " ".join(out.stdout.split())
    assert all(f"{name} KEPT" in report for name in CONTRACTS.values()), out.stdout
    assert len(CONTRACTS) >= 7


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """A copy of the packages and their contracts, to plant forbidden imports in."""
    root = tmp_path_factory.mktemp("planted")
    for package in ("monitoring", "localcml", "cmlbase"):
        shutil.copytree(REPO / package, root / package, ignore=shutil.ignore_patterns("__pycache__", "spec"))
    shutil.copy(REPO / "setup.cfg", root / "setup.cfg")
    return root


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("monitoring/domain/metrics/drift.py", "from monitoring.workflows import context", "layers"),
        ("monitoring/domain/records/values.py", "from monitoring.domain.windows import results", "domain"),
        ("monitoring/domain/metrics/tables.py", "import monitoring.domain.decisions.thresholds", "domain"),
        ("monitoring/domain/training/challenge.py", "from monitoring.domain.data import scenario", "domain"),
        ("monitoring/core/progress.py", "import monitoring.state.store", "layers"),
        ("monitoring/core/progress.py", "from monitoring.config import pipeline", "layers"),
        ("monitoring/config/model_spec.py", "import monitoring.domain", "layers"),
        ("monitoring/workflows/traffic.py", "from localcml import faults", "activation"),
        ("monitoring/domain/windows/compute.py", "import cdsw", "adapter"),
        ("localcml/models/router.py", "from monitoring.workflows import context", "workspace"),
        ("localcml/metrics/sdk.py", "from monitoring.core.durations import to_ms", "workspace"),
        ("cmlbase/db.py", "from localcml.core.errors import ConfigError", "base"),
        ("cmlbase/logs.py", "import monitoring.core.errors", "base"),
        ("monitoring/state/store.py", "import matplotlib.pyplot", "plots"),
        ("monitoring/workflows/redeploy.py", "from monitoring.workflows.accuracy import lease_name", "workflows"),
        (
            "monitoring/workflows/recovery/rebuild.py",
            "from monitoring.workflows.traffic import simulate_traffic",
            "workflows",
        ),
        ("monitoring/workflows/recovery/admin.py", "from monitoring.app.wiring import build_context", "layers"),
    ],
)
def test_a_planted_forbidden_import_breaks_its_contract(planted, module, line, contract):
    path = planted / module
    original = path.read_text()
    path.write_text(original + f"\n{line}\n")
    try:
        out = lint_imports(planted)
    finally:
        path.write_text(original)
    assert out.returncode != 0
    report = " ".join(out.stdout.split())  # contract names wrap in the report
    assert f"{CONTRACTS[contract]} BROKEN" in report, out.stdout


@pytest.mark.parametrize("job", sorted(p.name for p in (REPO / "jobs").glob("*.py")))
def test_jobs_are_thin_composition_roots(job):
    names = imported(REPO / "jobs" / job)
    assert not [n for n in names if n.split(".")[0] in ("pandas", "numpy", "sklearn", "requests", *PLATFORM_ROOTS)]
    library = {n for n in names if n.startswith("monitoring.")}
    assert library and all(n.startswith(("monitoring.app.jobrun", "monitoring.workflows.")) for n in library), library
    assert len((REPO / "jobs" / job).read_text().splitlines()) <= 40


def test_the_adapter_imports_cdsw_and_cmlapi_lazily_by_name():
    tree = ast.parse(ADAPTER.read_text())
    top_level = {a.name for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top_level |= {n.module or "" for n in tree.body if isinstance(n, ast.ImportFrom)}
    assert not [m for m in top_level if m.split(".")[0] in PLATFORM_ROOTS], top_level
    literals = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    assert {"cdsw", "cmlapi", "cmlapi.rest"} <= literals  # the names it imports on demand


def test_importing_the_domain_loads_no_platform_module_and_no_plotting():
    domain = REPO / "monitoring" / "domain"
    modules = sorted(".".join(p.relative_to(domain).with_suffix("").parts) for p in domain.rglob("*.py"))
    modules = [m.removesuffix(".__init__") for m in modules if m != "__init__"]
    assert len(modules) > 30 and "records.decode" in modules  # every room's modules, not only the top level
    code = (
        "import sys\n"
        + "".join(f"import monitoring.domain.{m}\n" for m in modules)
        + "print(sorted(m for m in sys.modules if m.split('.')[0] in ('cdsw', 'cmlapi', 'cml', 'localcml')"
        " or m.startswith('monitoring.cmlclient') or m == 'matplotlib.pyplot'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _docstrings(tree: ast.AST) -> set[int]:
    """``id`` of every docstring node of a module, class or function."""
    bodies = [n for n in ast.walk(tree) if isinstance(n, ast.Module | ast.ClassDef | ast.FunctionDef)]
    return {
        id(n.body[0].value)
        for n in bodies
        if n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)
    }


def test_the_default_metrics_store_is_written_in_one_place():
    """``cmlbase/metrics_store.py`` alone names the workspace's default metrics store file: the config
    (``platform.local.metrics_store_url``, which the state store's settings record) and the workspace
    both take it from there, so they name the same store."""
    home = REPO / "cmlbase" / "metrics_store.py"
    paths = [*(REPO / "monitoring").rglob("*.py"), *(REPO / "localcml").rglob("*.py"), *(REPO / "cmlbase").glob("*.py")]
    writers = []
    for path in sorted(paths):
        tree = ast.parse(path.read_text())
        prose = _docstrings(tree)
        for node in ast.walk(tree):
            text = node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else ""
            if id(node) not in prose and " " not in text and (text == "metrics.db" or text.endswith("/metrics.db")):
                writers.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert writers and all(w.startswith(str(home.relative_to(REPO))) for w in writers), writers


def test_the_kernel_keeps_no_module_that_only_re_exports_the_shared_base():
    """A module of ``monitoring/core`` adds something to what it takes from ``cmlbase`` (the project's
    errors, the config's field type, the job's logger); the library imports what it would only pass
    on (the clocks) from ``cmlbase`` itself."""
    shims = []
    for path in sorted((REPO / "monitoring" / "core").glob("*.py")):
        body = ast.parse(path.read_text()).body
        own = [
            n
            for n in body
            if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))  # the docstring
            and not isinstance(n, ast.Import | ast.ImportFrom)
            and not (isinstance(n, ast.Assign) and [getattr(t, "id", "") for t in n.targets] == ["__all__"])
        ]
        from_base = [n for n in body if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("cmlbase")]
        if from_base and not own:
            shims.append(path.name)
    assert shims == []


def test_only_the_wiring_point_connects_to_the_platform_and_builds_a_context():
    """``monitoring/app/wiring.py`` is the one wiring point: no other module of the library, the jobs
    or the benchmarks imports ``connect`` from ``monitoring.cmlclient`` or calls ``Context(...)``."""
    wiring = REPO / "monitoring" / "app" / "wiring.py"
    paths = [*(REPO / "monitoring").rglob("*.py"), *(REPO / "jobs").glob("*.py"), *(REPO / "bench").glob("*.py")]
    offenders = []
    for path in sorted(p for p in paths if p != wiring):
        for node in ast.walk(ast.parse(path.read_text())):
            connects = (
                isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("monitoring.cmlclient")
                and any(a.name == "connect" for a in node.names)
            )
            builds = isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Context"
            if connects or builds:
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert offenders == []
    assert "connect" in imported(wiring) or "monitoring.cmlclient.connect" in imported(wiring)


def _modules(folder: Path, package: str | None) -> list[str]:
    """Module names of the ``.py`` files under ``folder`` (``package`` is their package, None: top level)."""
    names = []
    for path in sorted(folder.rglob("*.py")):
        parts = [*([package] if package else []), *path.relative_to(folder).with_suffix("").parts]
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_workspace_and_its_shim_import_nothing_of_the_library(tmp_path):
    """Every module of ``localcml`` (and of ``cmlbase``, and the shim's ``cdsw``, ``cml``, ``cmlapi``) imports in a
    process where the library cannot be imported, and none even tries to."""
    package = REPO / "localcml"
    own = [
        m
        for m in _modules(package, "localcml")
        if not m.startswith(("localcml.shim", "localcml.projects.starters"))  # the shim loads by its own names
    ]
    shim = [m for m in _modules(package / "shim", None) if m != "sitecustomize"]
    modules = [*_modules(REPO / "cmlbase", "cmlbase"), *own, *shim]
    assert {"localcml.metrics.sdk", "localcml.models.replica", "localcml.jobs.engine", "cdsw", "cmlapi.rest"} <= set(
        modules
    )
    attempts = tmp_path / "attempts.log"
    code = (
        "import importlib, sys\n"
        f"sys.path.insert(0, {str(package / 'shim')!r})\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(len(sys.modules), sorted(m for m in sys.modules if m.split('.')[0] == 'monitoring'))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "tests" / "no_library"), "NO_LIBRARY_ATTEMPTS": str(attempts)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split(" ", 1)[1].strip() == "[]"
    assert not attempts.exists(), attempts.read_text()


def test_outside_cml_the_adapter_says_how_to_run_locally():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CDSW_", "CML_MONITOR_", "PYTHONPATH"))}
    code = (
        "from monitoring.cmlclient import cml\n"
        "from monitoring.core.errors import ConfigError\n"
        "for get in (cml.sdk, cml.api_module, cml.api_client):\n"
        "    try:\n        get()\n    except ConfigError as exc:\n        print(exc.exit_code, exc.problems[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [ln.split(" ", 1)[0] for ln in lines] == ["2", "2", "2"]
    for line, name in zip(lines, ("cdsw", "cmlapi", "cmlapi")):
        assert f"cannot import {name!r}" in line
        assert "run inside a CML project" in line and "platform.kind: local" in line and "cml-monitor local env" in line


def _self_calls(tree: ast.AST, name: str) -> list[ast.Call]:
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == name
        and isinstance(n.func.value, ast.Name)
        and n.func.value.id == "self"
    ]


def test_every_cmlapi_call_in_the_facade_passes_arguments_by_keyword():
    tree = ast.parse((REPO / "monitoring" / "cmlclient" / "api.py").read_text())
    calls, pages = _self_calls(tree, "_call"), _self_calls(tree, "pages")
    creates = _self_calls(tree, "_create")
    assert len(calls) + len(creates) >= 12 and len(pages) >= 4 and len(creates) >= 5
    # _call(operation, method, **kwargs), _create(operation, method, **kwargs) and pages(operation,
    # method, items_key, **kwargs): the cmlapi method name is the only other positional; every
    # argument of the cmlapi call itself is a keyword
    assert all(len(c.args) == 2 for c in calls + creates) and all(len(c.args) == 3 for c in pages)
    named = [c for c in calls + creates + pages if isinstance(c.args[1], ast.Constant)]
    passed_on = [c for c in calls if isinstance(c.args[1], ast.Name)]
    # pages() and _create() handing their own method to _call
    assert [c.args[1].id for c in passed_on] == ["method", "method"]
    # every create goes through _create: a retry first looks for what an earlier attempt created
    guarded = {"create_model", "create_model_build", "create_model_deployment", "create_job", "create_application"}
    assert {c.args[1].value for c in creates if isinstance(c.args[1], ast.Constant)} == guarded
    assert not guarded & {c.args[1].value for c in calls if isinstance(c.args[1], ast.Constant)}
    methods = {c.args[1].value for c in named}
    assert {
        "create_job",
        "update_job",
        "create_job_run",
        "create_model",
        "create_model_build",
        "create_model_deployment",
        "list_model_deployments",
        "get_model_build",
    } <= methods
    direct = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Attribute) and n.value.attr == "client"
    ]
    assert direct == []  # nothing calls self.client.<method>(...) around the retry policy


def test_no_module_reaches_around_the_facade_to_the_raw_client():
    offenders = []
    for path in sorted((REPO / "monitoring").rglob("*.py")):
        if path.parent.name == "cmlclient":
            continue
        tree = ast.parse(path.read_text())
        if any(
            isinstance(n, ast.Attribute)
            and n.attr == "client"
            and isinstance(n.value, ast.Attribute)
            and n.value.attr == "api"
            for n in ast.walk(tree)
        ):
            offenders.append(path.relative_to(REPO).as_posix())
    assert offenders == []


def test_only_the_facade_reads_vendor_objects():
    """Outside ``monitoring.cmlclient`` nobody imports its private helpers (``_field`` reads a vendor
    object): the facade hands out typed records (``cmlclient.refs``) instead."""
    offenders = []
    for path in sorted([*(REPO / "monitoring").rglob("*.py"), *(REPO / "bench").glob("*.py")]):
        if path.parent.name == "cmlclient":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("monitoring.cmlclient"):
                offenders += [f"{path.relative_to(REPO)}: {a.name}" for a in node.names if a.name.startswith("_")]
    assert offenders == []
    refs = {n.name for n in ast.parse((REPO / "monitoring/cmlclient/refs.py").read_text()).body if hasattr(n, "name")}
    assert {"ModelRef", "BuildRef", "DeploymentRef", "JobRef", "JobRunRef", "_field"} <= refs
