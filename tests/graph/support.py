"""Helpers for the job graph tests: configs with a planted secret, a recording CmlApi."""

from __future__ import annotations

from pathlib import Path

import yaml

from localcml.workspace import LocalWorkspace
from monitoring.cmlclient.api import CmlApi
from monitoring.config.pipeline import PipelineConfig, parse_config
from tests.cmlclient.support import RecordingClient, fast_policy

REPO = Path(__file__).resolve().parents[2]
#: A secret planted in a job's environment: it must never be exported or written into AMP metadata.
SECRET = "s3cr3t-value-9d1f"


def config(edit=None) -> PipelineConfig:
    """The repository's pipeline config, a job given env vars (one a secret), then ``edit(data)``."""
    data = yaml.safe_load((REPO / "config/pipeline.yaml").read_text())
    data["jobs"]["graph"][1]["environment"] = {"LOG_FORMAT": "plain", "API_KEY": SECRET}
    data["jobs"]["graph"][2]["arguments"] = "--quiet"
    if edit:
        edit(data)
    return parse_config(data)


def names(cfg: PipelineConfig) -> list[str]:
    return [j.name for j in cfg.jobs.graph]


def api_for(ws: LocalWorkspace) -> CmlApi:
    """CmlApi over a recording client (``api.client.calls``)."""
    return CmlApi(RecordingClient(ws.client()), ws.project_id, fast_policy())


def writes(api: CmlApi) -> list[str]:
    """The calls that changed something."""
    return [c.method for c in api.client.calls if not c.method.startswith(("list_", "get_"))]
