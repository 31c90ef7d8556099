"""Start-up hook of local engines: ``<name>.<CDSW_DOMAIN>`` resolves to the local workspace.

Python imports ``sitecustomize`` at start-up from ``sys.path``; the shim directory is first on
``PYTHONPATH`` in every local engine, replica, application and ``cml-monitor local env`` shell.
After installing the resolver it runs the next ``sitecustomize`` on ``sys.path``, if any, so a
system or virtualenv hook keeps working.
"""

import os
import sys


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


_install()
_chain()
