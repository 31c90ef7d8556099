"""The model runtime: loads a model file the way CML's model runtime does, for replicas and build checks.

What is matched (see docs/local-workspace.md, "Model files"):

- the working directory is the build's root (in CML, ``/home/cdsw`` holding the project's files);
- ``sys.path[0]`` is ``""``, the working directory looked up at import time (as in the Jupyter
  kernel that runs model code in PBJ runtimes), so a model file that does ``os.chdir("code")``
  and then ``from churnexplainer import ...`` finds ``code/churnexplainer.py``; the project root
  stays importable through ``PYTHONPATH``;
- the file is run once, by path, as the kernel's main module (``__name__ == "__main__"``,
  registered in ``sys.modules``, so classes it defines pickle and dataclasses work), with
  ``__file__`` set; its directory is not added to ``sys.path``;
- then the named function is looked up in what the file defined, and must be callable.

A build check (``python -m localcml.models.runtime CHECK FILE FUNCTION``) runs the same loader,
so what builds also serves.
"""

from __future__ import annotations

import os
import sys
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any


class LoadError(Exception):
    """The model function cannot be loaded from the build."""


def _shadow_build_packages(build_dir: Path) -> None:
    """Forget already-imported modules that the build also provides, so the build's copy wins."""
    for name in list(sys.modules):
        top = name.split(".")[0]
        if top == "__main__" or top in sys.builtin_module_names:
            continue
        if not ((build_dir / top / "__init__.py").is_file() or (build_dir / f"{top}.py").is_file()):
            continue
        origin = getattr(sys.modules[name], "__file__", None)
        if origin is None or build_dir not in Path(origin).resolve().parents:
            del sys.modules[name]


def load_model(build_dir: str | Path, rel_path: str, name: str) -> Callable[..., Any]:
    """Run the model file of a build and return its model function.

    Args:
        build_dir: the build's root (becomes the working directory).
        rel_path: the model file relative to it, e.g. ``code/5_model_serve_explainer.py``.
        name: the function's name.

    Returns:
        The callable.

    Raises:
        LoadError: the file is missing, outside the build or not Python, or defines no such callable.
        Exception: whatever the model file raises while it runs (a missing module, a missing artifact).
    """
    build_dir = Path(build_dir).resolve()
    path = (build_dir / rel_path).resolve()
    if build_dir not in path.parents:
        raise LoadError(f"model file {rel_path!r} is outside the project (it resolves to {path})")
    if not path.is_file() or path.suffix != ".py":
        raise LoadError(f"model file {rel_path!r} is not a .py file of the build {build_dir}")
    os.chdir(build_dir)
    if "" in sys.path:
        sys.path.remove("")
    sys.path.insert(0, "")
    _shadow_build_packages(build_dir)
    module = types.ModuleType("__main__")
    module.__dict__.update({"__builtins__": __builtins__, "__file__": str(path)})
    sys.modules["__main__"] = module
    code = compile(path.read_text(), str(path), "exec")
    exec(code, module.__dict__)
    func = module.__dict__.get(name)
    if not callable(func):
        raise LoadError(f"model file {rel_path!r} defines no function {name!r}")
    return func


def check(rel_path: str, name: str) -> int:
    """The build check, run in the build's root: 0 when the model loads as a replica would load it."""
    try:
        load_model(os.getcwd(), rel_path, name)
    except LoadError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    except BaseException:  # noqa: BLE001 - any failure of the model file fails the build, with its traceback
        traceback.print_exc()
        print(f"build failed: {rel_path} raised while loading", file=sys.stderr)
        return 1
    print(f"build check passed: {rel_path}:{name} loads as a model replica loads it")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "check":
        print("usage: python -m localcml.models.runtime check FILE FUNCTION", file=sys.stderr)
        return 2
    return check(args[1], args[2])


if __name__ == "__main__":
    sys.exit(main())
