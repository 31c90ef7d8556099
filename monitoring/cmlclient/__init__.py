"""The platform the workflows receive: CML API v2, the metrics SDK, the model endpoint and a clock.

``connect`` builds it. Inside CML it wraps the real ``cdsw`` and ``cmlapi``; with
``platform.kind: local`` it first activates the embedded local workspace
(``local_workspace.activate``), so the very same calls reach local, real parts.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cmlbase.clock import Clock, clock_from_env
from monitoring.cmlclient import cml, local_workspace
from monitoring.cmlclient.api import CmlApi
from monitoring.cmlclient.endpoint import ModelEndpoint
from monitoring.cmlclient.metrics import MetricsClient
from monitoring.cmlclient.refs import ModelRef
from monitoring.cmlclient.retry import RetryPolicy
from monitoring.config.pipeline import PipelineConfig
from monitoring.core.errors import ConfigError
from monitoring.core.logs import register_secret


@dataclass
class Platform:
    """Everything a workflow may touch outside the process, built once per run by ``connect``."""

    api: CmlApi
    metrics: MetricsClient
    clock: Clock
    retry: RetryPolicy
    endpoint_url: str
    model_api_key: str | None
    run_id: str = field(default_factory=lambda: os.environ.get("CDSW_ENGINE_ID") or f"manual-{uuid.uuid4().hex[:8]}")
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    endpoint_type: type[ModelEndpoint] = ModelEndpoint
    """What ``endpoint`` builds (a rehearsal may hand in a subclass that notes each answer)."""

    def endpoint(self, model: ModelRef, timeout_s: float) -> ModelEndpoint:
        """A client of ``model``'s endpoint; close it when done."""
        return self.endpoint_type(self.endpoint_url, model.access_key, self.model_api_key, timeout_s, self.retry)


def model_endpoint_url(sdk) -> str:
    """CML's model service URL: the SDK's own helper when it has one, else from ``CDSW_DOMAIN``."""
    helper = getattr(sdk, "_get_model_call_endpoint", None)
    if callable(helper):
        with local_workspace.translated():  # the local workspace's cdsw raises its own ConfigError
            return helper()
    domain = os.environ.get("CDSW_DOMAIN")
    if not domain:
        raise ConfigError("CDSW_DOMAIN is not set: cannot find the model endpoint (run inside CML)")
    return f"https://modelservice.{domain}/model"


def connect(
    cfg: PipelineConfig,
    project_root: str | Path = ".",
    clock: Clock | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Platform:
    """Build the platform for this process.

    Raises:
        ConfigError: outside CML without a local workspace, or a required variable is missing.
    """
    project_root = Path(project_root).resolve()
    if cfg.platform.kind == "local":
        local_workspace.activate(cfg, project_root)
    project_id = os.environ.get("CDSW_PROJECT_ID")
    if not project_id:
        raise ConfigError("CDSW_PROJECT_ID is not set: run inside a CML project, or use platform.kind: local")
    retry = RetryPolicy.from_config(cfg.platform.retry, sleep=sleep)
    sdk = cml.sdk()
    client = cml.api_client()
    api_key = os.environ.get(cfg.model.api_key_env) or None
    register_secret(api_key)
    return Platform(
        api=CmlApi(client, project_id, retry, request_timeout_s=cfg.platform.request_timeout.total_seconds()),
        metrics=MetricsClient(sdk, retry, concurrency=cfg.scenario.concurrency),
        clock=clock or clock_from_env(),
        retry=retry,
        endpoint_url=model_endpoint_url(sdk),
        model_api_key=api_key,
        sleep=sleep,
    )
