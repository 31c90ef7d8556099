"""API v2 handlers of the Spark settings: the workspace's defaults (read, set) and the ones CML fixes."""

from __future__ import annotations

from pathlib import Path

from localcml.core.errors import invalid
from localcml.datalake.connections import defined
from localcml.datalake.settings import fixed, render, set_workspace_defaults, workspace_defaults


def _flag(value: object, name: str) -> bool:
    text = str(value).lower()
    if text not in ("true", "false"):
        raise invalid(f"{name} must be true or false, not {value!r}")
    return text == "true"


class SparkSettingsApi:
    """Handlers ``handler(path, query, body) -> response dict`` for Spark settings."""

    def __init__(self, workspace_dir: Path):
        self.workspace_dir = workspace_dir

    def read_workspace_spark_default(self, path: dict, query: dict, body: None) -> dict:
        pushdown = _flag(path.get("is_pushdown"), "is_pushdown")
        return {
            "workspace_spark_default": workspace_defaults(self.workspace_dir, pushdown),
            "is_pushdown": str(pushdown).lower(),
        }

    def set_workspace_spark_default(self, path: dict, query: dict, body: dict | None) -> dict:
        body = body or {}
        text = body.get("workspace_spark_default", "")
        if not isinstance(text, str):
            raise invalid("workspace_spark_default must be a string (spark-defaults.conf lines)")
        set_workspace_defaults(self.workspace_dir, text, _flag(body.get("is_pushdown", "false"), "is_pushdown"))
        return {}

    def read_cml_spark_default(self, path: dict, query: dict, body: None) -> dict:
        _flag(path.get("pushdown_enabled"), "pushdown_enabled")
        _flag(path.get("raz_enabled"), "raz_enabled")
        first = defined(self.workspace_dir)[0]
        return {"cml_spark_default": render(fixed(first))}
