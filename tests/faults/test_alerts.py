"""The decision webhook from real job runs and in-process jobs: told, retried, or down without failing a job."""

from __future__ import annotations

from monitoring.core.errors import EXIT_REDEPLOY_FAILED
from tests.faults.invariants import assert_invariants
from tests.faults.rig import Rig
from tests.receiver import SECRET_PATH, receiving, refused_url

VAR = "ONCALL_WEBHOOK_URL"


def webhook_on(rig: Rig, **extra) -> None:
    rig.reconfigure(alerts={"webhook": {"url_env": VAR, "timeout": "2s", "budget": "6s", **extra}})


def warnings_about_the_webhook(log: str) -> list[str]:
    return [line for line in log.splitlines() if "webhook not told" in line]


def test_a_breach_is_told_from_a_real_evaluate_job_run(rig):
    webhook_on(rig)
    with receiving() as receiver:
        status, verdict, log = rig.job_run("evaluate_thresholds", {VAR: receiver.url})
    assert status == "ENGINE_SUCCEEDED", log[-3000:]
    assert verdict["decision_action"] == "redeploy" and verdict["webhook"] == "sent"
    (message,) = receiver.posts
    assert message["event"] == "breach" and message["model"] == rig.cfg.model.name
    assert message["text"].startswith(f"cml-monitor: {rig.cfg.model.name}: policy breached, redeploying. window ")
    assert message["fields"]["decision"] == verdict["decision"] and message["project"] == rig.ws.project_id
    assert message["action"].startswith("none; the redeploy job retrains")
    assert SECRET_PATH not in log and warnings_about_the_webhook(log) == []


def test_a_real_redeploy_run_goes_on_when_the_webhook_refuses_and_says_so_once(rig):
    webhook_on(rig)
    status, verdict, log = rig.job_run("redeploy", {VAR: refused_url()})
    assert status == "ENGINE_SUCCEEDED", log[-3000:]
    assert verdict["status"] in ("deployed", "rejected") and verdict["webhook"] == "failed"
    (warning,) = warnings_about_the_webhook(log)
    assert f"event={verdict['status']}" in warning and 'reason="connection refused"' in warning
    assert SECRET_PATH not in log
    assert_invariants(rig)


def test_a_failed_redeploy_is_told_after_a_500_and_its_failed_verdict_says_so(rig, monkeypatch):
    webhook_on(rig)
    rig.ws.inject("build=fail")
    with receiving([500]) as receiver:
        monkeypatch.setenv(VAR, receiver.url)
        code, verdict = rig.job("redeploy")
    assert code == EXIT_REDEPLOY_FAILED and verdict["status"] == "failed" and verdict["webhook"] == "sent"
    first, second = receiver.posts
    assert first == second and second["event"] == "failed" and second["exit_code"] == EXIT_REDEPLOY_FAILED
    assert "ended with status 'build failed'" in second["summary"] and second["error"] == "RedeployError"
    assert second["text"].startswith(f"cml-monitor: {rig.cfg.model.name}: redeploy FAILED. ")


def test_only_the_configured_events_are_told_and_an_unset_variable_is_one_warning(rig, monkeypatch):
    webhook_on(rig, events=["suppressed"])
    monkeypatch.delenv(VAR, raising=False)
    code, verdict = rig.job("evaluate_thresholds")  # a breach: not in events, nothing told
    assert code == 0 and verdict["decision_action"] == "redeploy" and "webhook" not in verdict
    rig.reconfigure(thresholds={"max_redeploys_per_day": 0})
    code, verdict = rig.job("evaluate_thresholds")
    assert code == 0 and verdict["decision_action"] == "suppressed" and verdict["webhook"] == "unset"
    (warning,) = warnings_about_the_webhook(rig.last_log)
    assert f'reason="{VAR} is not set"' in warning
