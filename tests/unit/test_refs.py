"""Typed platform records: built from vendor objects (model objects or dicts) with one casing and real types."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from monitoring.cmlclient.refs import BuildRef, DeploymentRef, JobRef, JobRunRef, ModelRef
from monitoring.core.logs import REDACTOR


def test_a_job_from_a_response_has_numbers_a_map_and_empty_text_for_unset_fields():
    job = JobRef.of(
        SimpleNamespace(
            id="j1",
            name="cml-monitor redeploy",
            script="jobs/redeploy.py",
            cpu=1,
            memory="4",
            timeout="3600",  # Job.timeout is an int64: a string in the message
            environment='{"CML_MONITOR_MANAGED": "true", "N": 3}',
            parent_id=None,
            type="manual",
        )
    )
    assert (job.cpu, job.memory, job.timeout) == (1.0, 4.0, 3600)
    assert job.environment == {"CML_MONITOR_MANAGED": "true", "N": "3"}
    assert (job.parent_id, job.schedule, job.timezone, job.arguments) == ("", "", "", "")


@pytest.mark.parametrize("environment", ["not json", "[1, 2]", None, ""])
def test_an_unreadable_environment_is_an_empty_map(environment):
    assert JobRef.of({"id": "j1", "environment": environment}).environment == {}


@pytest.mark.parametrize(
    "status, finished, active, succeeded",
    [
        ("engine_running", False, True, False),
        ("ENGINE_SUCCEEDED", True, False, True),
        ("Engine_Failed ", True, False, False),
    ],
)
def test_a_run_status_is_upper_case_whatever_the_platform_sent(status, finished, active, succeeded):
    run = JobRunRef.of({"id": "r1", "job_id": "j1", "status": status, "created_at": "2026-11-23T10:00:00Z"})
    assert run.status == status.strip().upper()
    assert (run.finished, run.active, run.succeeded) == (finished, active, succeeded)


@pytest.mark.parametrize(
    "status, built, failed",
    [("Built", True, False), ("building", False, False), ("BUILD FAILED", False, True), ("timedout", False, True)],
)
def test_a_build_status_is_lower_case_and_says_whether_it_can_be_deployed(status, built, failed):
    build = BuildRef.of(SimpleNamespace(id="b1", status=status, crn="crn:b1", comment="v2 d-1"))
    assert (build.status, build.built, build.failed) == (status.lower(), built, failed)


@pytest.mark.parametrize(
    "created_at, ms",
    [
        ("2026-11-23T10:00:00Z", 1_795_428_000_000),
        ("2026-11-23T10:00:00.250+00:00", 1_795_428_000_250),
        ("2026-11-23T11:00:00+01:00", 1_795_428_000_000),
        ("2026-11-23T10:00:00", 1_795_428_000_000),  # no zone: UTC
        ("yesterday", None),
        ("", None),
    ],
)
def test_a_deployment_knows_when_it_was_created(created_at, ms):
    dep = DeploymentRef.of({"id": "d1", "crn": "crn:d1", "status": "Deployed", "created_at": created_at}, "b1")
    assert (dep.created_ms, dep.status, dep.build_id) == (ms, "deployed", "b1")


def test_a_model_access_key_is_redacted_once_read():
    model = ModelRef.of({"id": "m1", "name": "tower", "crn": "crn:m1", "access_key": "mkey-4f1c2a9d8e"})
    assert model.access_key == "mkey-4f1c2a9d8e"
    assert "mkey-4f1c2a9d8e" not in REDACTOR(f"calling the model with {model.access_key}")
