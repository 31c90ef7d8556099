"""The model metrics store through the ``cdsw`` SDK: chunked reads, ground truth, aggregates."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from monitoring.cmlclient.retry import RetryPolicy
from monitoring.core.errors import DataError, PlatformError, TransientPlatformError
from monitoring.core.logs import KV

log = logging.getLogger(__name__)


@dataclass
class LabelPosts:
    """What one round of ground-truth posts did, by label.

    Attributes:
        posted: uuids whose label landed.
        failed: ``(uuid, error)``: the metrics store failed (unreachable, out of space, 5xx after
            retries, ...); the label may or may not have landed.
        refused: ``(uuid, error)``: the SDK refused this label itself (``ValueError``: e.g. no record
            with that uuid yet); it did not land.
        not_tried: uuids left out once a post had failed after every retry: the store is failing,
            and posting the rest would only wait out the same retries for each.
    """

    posted: list[str] = field(default_factory=list)
    failed: list[tuple[str, PlatformError]] = field(default_factory=list)
    refused: list[tuple[str, PlatformError]] = field(default_factory=list)
    not_tried: list[str] = field(default_factory=list)

    @property
    def store_failed(self) -> int:
        """Labels the store failed or that were left out because it failed (neither landed nor refused)."""
        return len(self.failed) + len(self.not_tried)

    @property
    def first_failure(self) -> PlatformError | None:
        """The first failure of the store (not a refusal), if any."""
        return self.failed[0][1] if self.failed else None


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

    def post_labels(self, labels: list[tuple[str, dict[str, Any]]], concurrency: int | None = None) -> LabelPosts:
        """Attach delayed metrics to predictions (``track_delayed_metrics``), ``concurrency`` at a time
        (default: the client's).

        Each failure is logged naming its uuid. Once one post failed after every retry, the posts
        not started yet are left out (``not_tried``).

        Returns:
            What happened to each label.
        """
        result = LabelPosts()
        if not labels:
            return result
        failing = threading.Event()

        def post(item: tuple[str, dict[str, Any]]) -> tuple[str, str, PlatformError | None]:
            uuid, metrics = item
            if failing.is_set():
                return uuid, "not_tried", None
            try:
                self.retry.call(
                    f"track delayed metrics for prediction {uuid}",
                    self.sdk.track_delayed_metrics,
                    metrics=metrics,
                    prediction_uuid=uuid,
                )
                return uuid, "posted", None
            except PlatformError as exc:  # one bad label must not lose the others
                log.warning("ground truth not posted, will retry next run %s", KV(uuid=uuid, error=str(exc)))
                if isinstance(exc.__cause__, ValueError):  # the SDK refused this label itself
                    return uuid, "refused", exc
                if isinstance(exc, TransientPlatformError):  # retried to the end: the store keeps failing
                    failing.set()
                return uuid, "failed", exc

        with ThreadPoolExecutor(max_workers=concurrency or self.concurrency) as pool:
            for uuid, outcome, error in pool.map(post, labels):
                if outcome == "posted":
                    result.posted.append(uuid)
                elif outcome == "not_tried":
                    result.not_tried.append(uuid)
                else:
                    getattr(result, outcome).append((uuid, error))
        if result.not_tried:
            log.warning(
                "ground truth posts stopped: the metrics store keeps failing %s",
                KV(not_tried=len(result.not_tried), first=str(result.first_failure)),
            )
        return result

    def track_aggregate(self, metrics: dict[str, Any], start_ms: int, end_ms: int, deployment_crn: str) -> None:
        self.retry.call(
            f"track aggregate metrics for deployment {deployment_crn}",
            self.sdk.track_aggregate_metrics,
            metrics=metrics,
            start_timestamp_ms=int(start_ms),
            end_timestamp_ms=int(end_ms),
            model_deployment_crn=deployment_crn,
        )
