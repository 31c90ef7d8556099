"""With this directory on ``PYTHONPATH``, a process cannot import the monitoring library.

For the tests that show the local workspace standing alone: Python imports ``sitecustomize`` at
start-up, and this one puts a finder first on ``sys.meta_path`` that refuses ``monitoring`` and
its modules. Processes the workspace spawns with this environment (its daemon) are refused too.
Every attempt is also appended to the file named by ``NO_LIBRARY_ATTEMPTS``, so one that some code
catches and ignores is still seen.
"""

import os
import sys

BLOCKED = "monitoring"
ATTEMPTS_ENV = "NO_LIBRARY_ATTEMPTS"


class NoLibrary:
    """A meta path finder that refuses the library."""

    def find_spec(self, name, path=None, target=None):
        if name != BLOCKED and not name.startswith(BLOCKED + "."):
            return None
        log = os.environ.get(ATTEMPTS_ENV)
        if log:
            with open(log, "a", encoding="utf-8") as out:
                out.write(f"pid {os.getpid()} imported {name}\n")
        raise ModuleNotFoundError(f"No module named {name!r} (refused: the workspace must stand alone)", name=name)


sys.meta_path.insert(0, NoLibrary())
