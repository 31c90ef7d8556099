"""The model metrics store through the ``cdsw`` SDK: chunked reads, ground truth, aggregates."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType
from typing import Any

from monitoring.cmlclient.retry import RetryPolicy
from monitoring.core.errors import DataError
from monitoring.core.logs import KV

log = logging.getLogger(__name__)


class MetricsClient:
    """Reads and writes model metrics with CML's SDK semantics.

    Args:
        sdk: the ``cdsw`` module (real or the local workspace's).
        retry: retry policy for transient failures.
        concurrency: parallel ``track_delayed_metrics`` calls (one HTTP call each inside CML).
    """

    def __init__(self, sdk: ModuleType, retry: RetryPolicy, concurrency: int = 4):
        self.sdk = sdk
        self.retry = retry
        self.concurrency = concurrency

    def read(self, deployment_crn: str, start_ms: int, end_ms: int) -> list[dict[str, Any]]:
        """Records of one deployment with ``start_ms <= startTimeStampMs <= end_ms``.

        Raises:
            DataError: the SDK answered with something other than ``{"metrics": [...]}``.
        """
        result = self.retry.call(
            f"read metrics of deployment {deployment_crn} [{start_ms}, {end_ms}]",
            self.sdk.read_metrics,
            model_deployment_crn=deployment_crn,
            start_timestamp_ms=int(start_ms),
            end_timestamp_ms=int(end_ms),
        )
        records = result.get("metrics") if isinstance(result, dict) else None
        if not isinstance(records, list):
            raise DataError(
                f"read_metrics for deployment {deployment_crn} returned "
                f"{type(result).__name__}, expected a dict with a 'metrics' list"
            )
        return records

    def read_chunks(
        self, deployment_crn: str, start_ms: int, end_ms: int, chunk_ms: int
    ) -> Iterator[tuple[int, int, list[dict[str, Any]]]]:
        """Yield ``(chunk_start, chunk_end_exclusive, records)`` so memory is bounded by one chunk."""
        lo = start_ms
        while lo < end_ms:
            hi = min(lo + chunk_ms, end_ms)
            yield lo, hi, self.read(deployment_crn, lo, hi - 1)
            lo = hi

    def post_ground_truth(self, labels: list[tuple[str, dict[str, Any]]], concurrency: int | None = None) -> list[str]:
        """Attach delayed metrics to predictions; returns the uuids that were posted.

        A uuid that fails after retries is logged and left out (its label stays pending).

        Args:
            labels: ``(uuid, metrics)`` pairs.
            concurrency: parallel posts (default: the client's).
        """
        if not labels:
            return []

        def post(item: tuple[str, dict[str, Any]]) -> str | None:
            uuid, metrics = item
            try:
                self.retry.call(
                    f"track delayed metrics for prediction {uuid}",
                    self.sdk.track_delayed_metrics,
                    metrics=metrics,
                    prediction_uuid=uuid,
                )
                return uuid
            except Exception as exc:  # noqa: BLE001 - one bad label must not lose the others
                log.warning("ground truth not posted, will retry next run %s", KV(uuid=uuid, error=str(exc)))
                return None

        with ThreadPoolExecutor(max_workers=concurrency or self.concurrency) as pool:
            return [u for u in pool.map(post, labels) if u is not None]

    def track_aggregate(self, metrics: dict[str, Any], start_ms: int, end_ms: int, deployment_crn: str) -> None:
        self.retry.call(
            f"track aggregate metrics for deployment {deployment_crn}",
            self.sdk.track_aggregate_metrics,
            metrics=metrics,
            start_timestamp_ms=int(start_ms),
            end_timestamp_ms=int(end_ms),
            model_deployment_crn=deployment_crn,
        )
