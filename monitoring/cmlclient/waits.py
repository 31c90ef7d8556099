"""Bounded polling for builds, deployments and job runs: every wait has a timeout from config."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from monitoring.cmlclient import Platform
from monitoring.cmlclient.refs import DeploymentRef, ModelRef
from monitoring.core.errors import RedeployError
from monitoring.core.logs import KV

log = logging.getLogger(__name__)


def poll(platform: Platform, what: str, check: Callable[[], Any | None], timeout_s: float, interval_s: float) -> Any:
    """Call ``check`` until it returns non-None or ``timeout_s`` passes (monotonic time).

    Raises:
        RedeployError: on timeout, naming what was awaited.
    """
    deadline = platform.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None:
            return result
        if platform.monotonic() >= deadline:
            raise RedeployError(f"timed out after {timeout_s:g}s waiting for {what}")
        platform.sleep(interval_s)


def wait_for_build(platform: Platform, model: ModelRef, build_id: str, timeout_s: float, interval_s: float) -> None:
    """Wait for ``built``; raise RedeployError on ``build failed``/``timedout`` or timeout."""

    def check() -> bool | None:
        build = platform.api.get_build(model, build_id)
        if build.built:
            return True
        if build.failed:
            raise RedeployError(f"build {build_id} of model {model.name!r} ended with status {build.status!r}")
        log.info("waiting for build %s", KV(build=build_id, status=build.status))
        return None

    poll(platform, f"build {build_id} to be built", check, timeout_s, interval_s)


def wait_for_deployment(
    platform: Platform, model: ModelRef, deployment: DeploymentRef, timeout_s: float, interval_s: float
) -> DeploymentRef:
    """Wait for status ``deployed``; raise RedeployError on a failed/stopped deployment or timeout."""

    def check() -> DeploymentRef | None:
        current = platform.api.get_deployment(model, deployment.build_id, deployment.id)
        if current.status == "deployed":
            return current
        if "fail" in current.status or current.status == "stopped":
            raise RedeployError(f"deployment {deployment.id} ended with status {current.status!r}")
        log.info("waiting for deployment %s", KV(deployment=deployment.id, status=current.status))
        return None

    return poll(platform, f"deployment {deployment.id} to be deployed", check, timeout_s, interval_s)
