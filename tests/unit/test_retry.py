"""Retries at the platform edge: which errors are retried, backoff without waiting, messages kept."""

import pytest
import requests

from monitoring.cmlclient.retry import RetryPolicy, translate
from monitoring.core.errors import PlatformRequestError, TransientPlatformError


class ApiError(Exception):
    """Shaped like cmlapi.rest.ApiException: status, reason, body."""

    def __init__(self, status, body='{"code": 13, "message": "boom"}'):
        super().__init__(f"({status})")
        self.status, self.reason, self.body = status, "reason", body


class FailNTimes:
    """Raises the given error n times, then returns 'ok'."""

    def __init__(self, n, error):
        self.n, self.error, self.calls = n, error, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.n:
            raise self.error
        return "ok"


def policy(sleeps, attempts=4):
    return RetryPolicy(attempts=attempts, initial_s=1, maximum_s=5, jitter_s=0, sleep=sleeps.append)


@pytest.mark.parametrize(
    "error",
    [
        ApiError(500),
        ApiError(502),
        ApiError(503),
        ApiError(429),
        ApiError(408),
        requests.ConnectionError("refused"),
        requests.Timeout("slow"),
    ],
)
def test_transient_errors_are_retried_with_capped_backoff(error):
    sleeps = []
    fn = FailNTimes(3, error)
    assert policy(sleeps).call("op", fn) == "ok"
    assert fn.calls == 4
    assert sleeps == [1, 2, 4]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409])
def test_client_errors_are_not_retried_and_keep_the_platform_message(status):
    sleeps = []
    fn = FailNTimes(1, ApiError(status, '{"code": 3, "message": "name is required"}'))
    with pytest.raises(PlatformRequestError, match=rf"create job 'x': HTTP {status}: name is required") as info:
        policy(sleeps).call("create job 'x'", fn)
    assert fn.calls == 1 and sleeps == [] and info.value.status == status


def test_gives_up_after_the_configured_attempts():
    sleeps = []
    fn = FailNTimes(10, ApiError(503))
    with pytest.raises(TransientPlatformError, match="HTTP 503: boom"):
        policy(sleeps, attempts=3).call("op", fn)
    assert fn.calls == 3 and len(sleeps) == 2


def test_non_idempotent_call_rereads_state_before_retrying():
    sleeps, created = [], []

    def create():
        created.append(1)
        raise ApiError(500, '{"message": "context deadline exceeded"}')

    result = policy(sleeps).call("create deployment", create, before_retry=lambda: "found-it" if created else None)
    assert result == "found-it" and len(created) == 1


def test_translate_unknown_exception_is_a_request_error():
    err = translate(KeyError("status"), "read model")
    assert isinstance(err, PlatformRequestError) and "read model: KeyError" in str(err)
