"""Start-up hook of local engines: the workspace's own packages, and ``<name>.<CDSW_DOMAIN>`` resolving locally.

Python imports ``sitecustomize`` at start-up from ``sys.path``; the shim directory is first on
``PYTHONPATH`` in every local engine, replica, application and ``cml-monitor local env`` shell.

- The shim's modules import from ``localcml`` (which imports ``cmlbase``), and the jobs import
  ``monitoring`` (which imports ``cmlbase`` too). Where the runtime has not installed them and the
  engine's code does not hold them, they are found by name in the folder holding this shim, after
  everything else on the import path. Only these three names: the rest of that folder (a checkout's ``examples/``, ``tests/``) stays out of reach,
  as it is in CML.
- After installing the resolver it runs the next ``sitecustomize`` on ``sys.path``, if any, so a
  system or virtualenv hook keeps working.
"""

import os
import sys
from importlib.machinery import PathFinder

#: The workspace's own packages, each found by name only.
OWN_PACKAGES = ("localcml", "cmlbase", "monitoring")


class OwnPackages:
    """A last-resort finder of the workspace's own top-level packages in one folder."""

    def __init__(self, folder):
        self.folder = folder

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in OWN_PACKAGES:
            return None
        return PathFinder.find_spec(fullname, [self.folder])

    def invalidate_caches(self):
        pass


def _own_packages() -> None:
    folder = os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))
    if not any(isinstance(finder, OwnPackages) for finder in sys.meta_path):
        sys.meta_path.append(OwnPackages(folder))


def _install() -> None:
    if not os.environ.get("CDSW_DOMAIN"):
        return
    try:
        from localcml.core import hosts
    except ImportError:  # the workspace package is not importable here: nothing to resolve
        return
    hosts.install()


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    for entry in sys.path:
        folder = os.path.abspath(entry or os.getcwd())
        candidate = os.path.join(folder, "sitecustomize.py")
        if folder != here and os.path.isfile(candidate):
            with open(candidate) as source:
                code = compile(source.read(), candidate, "exec")
            exec(code, {"__name__": "sitecustomize", "__file__": candidate})
            return


_own_packages()
_install()
_chain()
