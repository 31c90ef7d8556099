"""A webhook for on-call: one small JSON message per post, retried briefly at the edge, never a job failure.

The URL is a secret (a Slack or chat webhook URL carries its token in its path): it comes from
the environment variable the config names, is registered with the log redactor, and never
appears in a log line, an error or a message. A post that cannot be delivered within its
budget is reported as a ``Delivery``, not raised.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import requests

from monitoring.cmlclient.retry import RETRYABLE_STATUS, RetryPolicy
from monitoring.config.pipeline import WebhookConfig
from monitoring.core.errors import PlatformError, PlatformRequestError, TransientPlatformError
from monitoring.core.logs import REDACTOR, register_secret

HEADERS = {"Content-Type": "application/json", "User-Agent": "cml-monitor"}
#: Backoff between tries (seconds): short, the budget bounds the whole anyway.
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAXIMUM_S = 2.0
BACKOFF_JITTER_S = 0.25


@dataclass(frozen=True)
class Delivery:
    """How a post went: ``sent``, ``failed`` (after its tries) or ``unset`` (no URL in the environment).

    ``detail`` says why in a few words (``HTTP 200``, ``HTTP 500``, ``no answer within 5s``,
    ``connection refused``), never with the URL.
    """

    status: str
    attempts: int
    detail: str


def redacted(value: Any) -> Any:
    """``value`` with every string passed through the log redactor (access keys, tokens, passwords)."""
    if isinstance(value, str):
        return REDACTOR(value)
    if isinstance(value, Mapping):
        return {str(k): redacted(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redacted(v) for v in value]
    return value


class Webhook:
    """Posts JSON messages to one URL.

    Args:
        url: the webhook URL; empty when its variable is unset (every post is then ``unset``).
        variable: the environment variable it came from (named in ``unset`` deliveries).
        policy: retries for timeouts, connection errors, 408, 429 and 5xx, with a time budget.
        timeout_s: timeout of one try (cut to what is left of the budget).
        monotonic: the clock the budget is measured on.
    """

    def __init__(
        self,
        url: str,
        variable: str,
        policy: RetryPolicy,
        timeout_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self.variable = variable
        self.policy = policy
        self.timeout_s = timeout_s
        self.monotonic = monotonic
        register_secret(url)

    @classmethod
    def from_config(
        cls,
        cfg: WebhookConfig,
        environ: Mapping[str, str] = os.environ,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Webhook | None:
        """The configured webhook, or None when ``alerts.webhook.url_env`` is unset."""
        if not cfg.url_env:
            return None
        budget = cfg.budget.total_seconds()
        policy = RetryPolicy(cfg.attempts, BACKOFF_INITIAL_S, BACKOFF_MAXIMUM_S, BACKOFF_JITTER_S, sleep, budget)
        return cls(environ.get(cfg.url_env, "").strip(), cfg.url_env, policy, cfg.timeout.total_seconds())

    def post(self, message: Mapping[str, Any], what: str) -> Delivery:
        """Post ``message`` (secrets redacted) as JSON; tries again on transient failures within the budget.

        Args:
            what: names the message in retry log lines (``decision webhook (breach)``).

        Returns:
            The delivery; nothing is raised.
        """
        if not self.url:
            return Delivery("unset", 0, f"{self.variable} is not set")
        body = json.dumps(redacted(message), default=str).encode("utf-8")
        started, tries = self.monotonic(), [0]

        def attempt() -> int:
            left = (self.policy.budget_s or self.timeout_s) - (self.monotonic() - started)
            if left <= 0:
                raise PlatformRequestError(f"{what}: out of time")
            tries[0] += 1
            timeout = min(self.timeout_s, left)
            try:
                response = requests.post(self.url, data=body, headers=HEADERS, timeout=timeout, allow_redirects=False)
            except requests.Timeout:
                raise TransientPlatformError(f"{what}: no answer within {timeout:.3g}s") from None
            except requests.ConnectionError as exc:  # its text holds the URL's path: never shown
                reason = "connection refused" if "refused" in str(exc).lower() else "cannot connect"
                raise TransientPlatformError(f"{what}: {reason}") from None
            except requests.RequestException as exc:
                raise PlatformRequestError(f"{what}: {type(exc).__name__}") from None
            status = response.status_code
            response.close()
            if status in RETRYABLE_STATUS:
                raise TransientPlatformError(f"{what}: HTTP {status}")
            if status >= 300:
                raise PlatformRequestError(f"{what}: HTTP {status}", status=status)
            return status

        try:
            status = self.policy.call(what, attempt)
        except PlatformError as exc:
            return Delivery("failed", tries[0], str(exc).removeprefix(f"{what}: "))
        return Delivery("sent", tries[0], f"HTTP {status}")
