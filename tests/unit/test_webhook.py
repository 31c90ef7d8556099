"""The decision webhook against a real local HTTP receiver: 200, 500 then 200, timeouts, refused, unset."""

from __future__ import annotations

import logging

import pytest

from monitoring.cmlclient.webhook import Webhook
from monitoring.config.pipeline import WebhookConfig
from monitoring.core.logs import REDACTOR, register_secret
from tests.receiver import SECRET_PATH, receiving, refused_url

VAR = "ONCALL_WEBHOOK_URL"
MESSAGE = {"text": "cml-monitor: churn: policy breached", "event": "breach", "fields": {"value": 0.71}}


def hook(url: str | None, waits: list[float], **config) -> Webhook:
    """A webhook from config, its URL in the (given) environment; ``waits`` collects the backoff sleeps."""
    environ = {VAR: url} if url is not None else {}
    made = Webhook.from_config(WebhookConfig(url_env=VAR, **config), environ=environ, sleep=waits.append)
    assert made is not None
    return made


def test_no_variable_named_means_no_webhook():
    assert Webhook.from_config(WebhookConfig(), environ={VAR: "http://x"}) is None


def test_a_200_is_sent_once_as_json_with_a_slack_text_field():
    waits: list[float] = []
    with receiving() as receiver:
        delivery = hook(receiver.url, waits).post(MESSAGE, "decision webhook (breach)")
    assert (delivery.status, delivery.attempts, delivery.detail) == ("sent", 1, "HTTP 200")
    assert receiver.posts == [MESSAGE] and waits == []
    assert receiver.headers[0]["Content-Type"] == "application/json"


def test_a_500_then_a_200_is_retried_once_with_a_log_line_and_sent(caplog):
    waits: list[float] = []
    with receiving([500]) as receiver, caplog.at_level(logging.INFO):
        delivery = hook(receiver.url, waits).post(MESSAGE, "decision webhook (breach)")
    assert (delivery.status, delivery.attempts) == ("sent", 2)
    assert receiver.posts == [MESSAGE, MESSAGE] and len(waits) == 1
    assert "retrying" in caplog.text and "HTTP 500" in caplog.text


def test_a_receiver_that_never_answers_costs_a_bounded_number_of_tries_and_fails():
    waits: list[float] = []
    with receiving(["hang"] * 10) as receiver:
        delivery = hook(receiver.url, waits, timeout="200ms", budget="2s", attempts=5).post(MESSAGE, "hook")
        posted = len(receiver.posts)
    assert delivery.status == "failed" and delivery.detail == "no answer within 0.2s"
    # 3 tries of 0.2 s: before a 4th, the time spent plus the next backoff (2 s) would pass the budget.
    assert delivery.attempts == posted == 3 and len(waits) == 2


def test_a_try_never_outlasts_what_is_left_of_the_budget():
    with receiving(["hang"]) as receiver:
        delivery = hook(receiver.url, [], timeout="5s", budget="300ms").post(MESSAGE, "hook")
    assert (delivery.status, delivery.attempts, delivery.detail) == ("failed", 1, "no answer within 0.3s")


def test_a_refused_connection_is_tried_every_attempt_then_reported_without_the_url(caplog):
    waits: list[float] = []
    url = refused_url()
    with caplog.at_level(logging.DEBUG):
        delivery = hook(url, waits, attempts=3).post(MESSAGE, "decision webhook (deployed)")
    assert (delivery.status, delivery.attempts, delivery.detail) == ("failed", 3, "connection refused")
    assert len(waits) == 2
    assert SECRET_PATH not in caplog.text  # (urllib3 logs the host at DEBUG: not the secret part)
    assert REDACTOR(f"posting to {url}") == "posting to ***"  # the URL is a registered secret


@pytest.mark.parametrize("status", [400, 404, 302])
def test_an_answer_that_will_not_change_is_not_retried(status):
    waits: list[float] = []
    with receiving([status]) as receiver:
        delivery = hook(receiver.url, waits).post(MESSAGE, "hook")
    assert (delivery.status, delivery.attempts, delivery.detail) == ("failed", 1, f"HTTP {status}")
    assert len(receiver.posts) == 1 and waits == []


@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_named_variable_that_is_not_set_is_reported_not_raised(value):
    delivery = hook(value, []).post(MESSAGE, "hook")
    assert (delivery.status, delivery.attempts, delivery.detail) == ("unset", 0, f"{VAR} is not set")


def test_secrets_are_redacted_from_the_message():
    key = "mdl-access-key-0c5e9b7f"
    register_secret(key)
    message = {
        "text": f"deploy failed: endpoint refused accessKey {key}",
        "fields": {"error": "GET https://u:hunter2@db.example.com failed; api_key=abcd1234efgh"},
        "list": [f"Bearer {key}xyz"],
    }
    with receiving() as receiver:
        assert hook(receiver.url, []).post(message, "hook").status == "sent"
    (posted,) = receiver.posts
    text = str(posted)
    assert key not in text and "hunter2" not in text and "abcd1234efgh" not in text
    assert posted["text"] == "deploy failed: endpoint refused accessKey ***"
