"""Label posts go out in parallel, as many at once as asked (the ground-truth job's ``concurrency``)."""

from __future__ import annotations

import threading
import types

from monitoring.cmlclient.metrics import MetricsClient
from monitoring.cmlclient.retry import RetryPolicy


def barrier_sdk(parties: int) -> types.SimpleNamespace:
    """An SDK whose ``track_delayed_metrics`` returns only once ``parties`` calls are in flight together."""
    barrier = threading.Barrier(parties, timeout=10)
    posted: list[str] = []

    def track_delayed_metrics(metrics, prediction_uuid):
        barrier.wait()  # raises BrokenBarrierError when fewer calls than ``parties`` can be in flight
        posted.append(prediction_uuid)

    return types.SimpleNamespace(track_delayed_metrics=track_delayed_metrics, posted=posted)


def client(sdk, concurrency: int = 4) -> MetricsClient:
    return MetricsClient(sdk, RetryPolicy(attempts=1, jitter_s=0, sleep=lambda s: None), concurrency=concurrency)


LABELS = [(f"uuid-{i}", {"final_label": i % 2}) for i in range(16)]


def test_sixteen_posts_are_in_flight_at_once_when_asked():
    sdk = barrier_sdk(16)
    assert sorted(client(sdk).post_labels(LABELS, concurrency=16).posted) == sorted(u for u, _ in LABELS)
    assert len(sdk.posted) == 16


def test_without_a_width_the_clients_own_is_used():
    sdk = barrier_sdk(8)
    assert sorted(client(sdk, concurrency=8).post_labels(LABELS[:8]).posted) == sorted(u for u, _ in LABELS[:8])
