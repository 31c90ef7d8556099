"""Retries at the platform edge only, as data: which failures are transient, and how long to wait.

Foreign exceptions (``cmlapi.rest.ApiException``, ``requests`` errors) become the project's own
errors here, naming the operation and the object, chained with ``from``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import requests
import tenacity
import urllib3

from monitoring.config.pipeline import RetryConfig
from monitoring.core.errors import PlatformError, PlatformRequestError, TransientPlatformError
from monitoring.core.logs import KV

log = logging.getLogger(__name__)
T = TypeVar("T")

#: HTTP statuses worth another try: request timeout, too many requests / model.busy, server errors.
RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})


def platform_message(body: Any) -> str:
    """The human part of a CML error body (grpc-gateway ``message`` or the endpoint's error)."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except ValueError:
            return body.strip()[:300]
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):
            return str(err.get("message") or err.get("code") or err)[:300]
        return str(body.get("message") or err or body)[:300]
    return str(body)[:300]


def translate(exc: BaseException, operation: str) -> PlatformError:
    """Map a foreign exception to a transient or request error naming ``operation``."""
    status = getattr(exc, "status", None)
    if status is None and isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
    if isinstance(status, int) and status:
        body = getattr(exc, "body", None)
        if body is None and isinstance(exc, requests.HTTPError) and exc.response is not None:
            body = exc.response.text
        detail = platform_message(body) if body else (getattr(exc, "reason", None) or str(exc))
        message = f"{operation}: HTTP {status}: {detail}"
        if status in RETRYABLE_STATUS:
            return TransientPlatformError(message)
        return PlatformRequestError(message, status=status)
    if isinstance(
        exc, (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError, urllib3.exceptions.HTTPError)
    ):
        return TransientPlatformError(f"{operation}: {type(exc).__name__}: {exc}")
    return PlatformRequestError(f"{operation}: {type(exc).__name__}: {exc}")


@dataclass
class RetryPolicy:
    """Capped exponential backoff with jitter, for transient platform errors only.

    Args:
        attempts: total tries, the first included.
        initial_s / maximum_s / jitter_s: backoff shape in seconds.
        sleep: injectable so tests never wait.
        budget_s: when set, no retry starts once this much time has passed since the first try
            (or would have passed after the wait before it): for calls that must not hold up a job.
    """

    attempts: int = 5
    initial_s: float = 0.5
    maximum_s: float = 20.0
    jitter_s: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    budget_s: float | None = None

    @classmethod
    def from_config(cls, cfg: RetryConfig, sleep: Callable[[float], None] = time.sleep) -> RetryPolicy:
        return cls(
            cfg.attempts, cfg.initial.total_seconds(), cfg.maximum.total_seconds(), cfg.jitter.total_seconds(), sleep
        )

    def call(
        self,
        operation: str,
        fn: Callable[..., T],
        *args: Any,
        before_retry: Callable[[], T | None] | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn``; retry transient failures; raise the project's error when out of tries.

        Args:
            operation: what is being done, on which object (goes into logs and errors).
            before_retry: for non-idempotent calls: re-reads state before each retry (and once
                more when out of tries) and returns the result if an earlier attempt took
                effect after all (else None).

        Raises:
            TransientPlatformError: still failing after ``attempts`` tries.
            PlatformRequestError: refused (4xx other than 408/429, or a malformed call); never retried.
        """
        state = {"attempt": 0}

        def attempt() -> T:
            state["attempt"] += 1
            if state["attempt"] > 1 and before_retry is not None:
                found = before_retry()
                if found is not None:
                    log.info("retry not needed, the earlier attempt took effect %s", KV(operation=operation))
                    return found
            try:
                return fn(*args, **kwargs)
            except PlatformError:
                raise
            except Exception as exc:
                raise translate(exc, operation) from exc

        def before_sleep(rs: tenacity.RetryCallState) -> None:
            log.warning(
                "transient platform error, retrying %s",
                KV(
                    operation=operation,
                    attempt=rs.attempt_number,
                    of=self.attempts,
                    wait_s=round(rs.next_action.sleep, 2) if rs.next_action else None,
                    error=str(rs.outcome.exception()) if rs.outcome else None,
                ),
            )

        stop = tenacity.stop_after_attempt(self.attempts)
        if self.budget_s is not None:
            stop = stop | tenacity.stop_before_delay(self.budget_s)
        retrying = tenacity.Retrying(
            stop=stop,
            wait=tenacity.wait_exponential(multiplier=self.initial_s, max=self.maximum_s)
            + tenacity.wait_random(0, self.jitter_s),
            retry=tenacity.retry_if_exception_type(TransientPlatformError),
            before_sleep=before_sleep,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except TransientPlatformError:
            found = before_retry() if before_retry is not None and state["attempt"] > 0 else None
            if found is None:
                raise
            log.info("out of retries, but an earlier attempt took effect %s", KV(operation=operation))
            return found
