"""The ``cml`` tier: runs only inside a real CML project, never against the embedded local workspace."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

SHIM = Path(__file__).resolve().parents[2] / "localcml" / "shim"


def cml_unavailable_reason() -> str | None:
    """Why this is not a real CML project (None when it is: the ``cml`` tests then run)."""
    if not os.environ.get("CDSW_PROJECT_ID"):
        return "needs a real CML workspace: CDSW_PROJECT_ID is not set (run `pytest -m cml` in a CML session)"
    if os.environ.get("CML_MONITOR_WORKSPACE"):
        return "CML_MONITOR_WORKSPACE is set: this is the embedded local workspace, not CML"
    for name in ("cmlapi", "cdsw"):
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            return (
                f"{name} is not importable: inside CML install cmlapi with "
                "`pip install https://$CDSW_DOMAIN/api/v2/python.tar.gz`"
            )
        if SHIM in Path(spec.origin).resolve().parents:
            return f"{name} resolves to the local workspace's shim ({spec.origin}), not CML's"
    return None
