"""The Spark runtime add-on: what ``list_runtime_addons`` shows, from the ``pyspark`` installed here."""

from __future__ import annotations

from importlib import metadata

#: When the add-on appeared (the workspace has no history of add-on uploads).
CREATED_AT = "2025-01-01T00:00:00.000Z"


def spark_addon() -> dict:
    """CML's ``RuntimeAddon`` shape for the local Spark: AVAILABLE when pyspark is installed, else FAILED saying why."""
    try:
        version = metadata.version("pyspark")
    except metadata.PackageNotFoundError:
        version = ""
    digits = "".join(version.split(".")[:3]) or "0"
    addon = {
        "id": 1,
        "identifier": f"spark{digits}-local",
        "component": "Spark",
        "display_name": f"Spark {version or '(not installed)'} - local pyspark, local[2]",
        "status": "AVAILABLE" if version else "FAILED",
        "manageable": False,
        "created_at": CREATED_AT,
    }
    if not version:
        addon["reason"] = "pyspark is not installed in the workspace's interpreter (pip install 'cml-monitor[spark]')"
    return addon
