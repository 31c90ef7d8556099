"""Where a local workspace keeps its model metrics unless told otherwise: ``sqlite:///<W>/metrics.db``.

The workspace creates the store there; the library records which store its history's labels
live in. Both read the default from here, so they name the same store.
"""

from __future__ import annotations

import os

#: The store's file in the workspace directory W.
DEFAULT_FILE = "metrics.db"


def default_url(workspace_dir: str | os.PathLike[str]) -> str:
    """``sqlite:///<workspace_dir>/metrics.db``, ``workspace_dir`` written as given (relative stays relative)."""
    return f"sqlite:///{workspace_dir}/{DEFAULT_FILE}"
