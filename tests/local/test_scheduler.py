"""The cron scheduler: fires on the workspace clock, in the job's time zone, not when paused, one active run per
job, dependents only after success; fast-forward skips idle time from fire to fire."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

import pytest

from localcml.workspace import LocalWorkspace
from tests.local.support import runs_of, wait_for, wait_run

HOUR = 3_600_000
#: 2026-01-15 10:30:00 UTC (winter: Los Angeles is UTC-8).
T = int(datetime(2026, 1, 15, 10, 30, tzinfo=timezone.utc).timestamp() * 1000)


@pytest.fixture
def sched(tmp_path, project_root):
    ws = LocalWorkspace(tmp_path / "project" / ".cml-local", project_root, schedules=True).start()
    ws.set_now(T)
    yield ws
    ws.stop()


@pytest.fixture
def sapi(sched):
    return sched.client()


def job(api, ws, runtime, name, script="scripts/ok.py", **fields):
    body = {"name": name, "script": script, "runtime_identifier": runtime, **fields}
    return api.create_job(body, ws.project_id)


def ms(stamp) -> int:
    return int(stamp.timestamp() * 1000)


def idle(ws) -> None:
    wait_for(lambda: ws.idle() or None, "the workspace to be idle", timeout=60)


def test_a_scheduled_chain_fires_on_the_workspace_clock_and_fast_forwards(sapi, sched):
    runtime = sapi.list_runtimes().runtimes[0].image_identifier
    head = job(sapi, sched, runtime, "head", schedule="0 * * * *", timezone="UTC")
    child = job(sapi, sched, runtime, "child", parent_id=head.id)
    assert [f["at_ms"] for f in sched.scheduler.next_fires()] == [T + HOUR // 2]  # 11:00 UTC
    assert runs_of(sapi, sched.project_id, head.id) == []  # nothing fires before its time
    sched.scheduler.fast_forward(T + 3 * HOUR, fires=2)
    wait_for(lambda: len(runs_of(sapi, sched.project_id, child.id)) == 2 or None, "two chains", timeout=90)
    idle(sched)
    heads = sorted(runs_of(sapi, sched.project_id, head.id), key=lambda r: r.created_at)
    fired = [ms(r.created_at) for r in heads]
    assert [f - f % HOUR for f in fired] == [T + HOUR // 2, T + 3 * HOUR // 2]  # 11:00 and 12:00
    assert all(f % HOUR < 5_000 for f in fired)  # created at the fire, on the workspace clock
    children = sorted(runs_of(sapi, sched.project_id, child.id), key=lambda r: r.created_at)
    assert all(c.status == "ENGINE_SUCCEEDED" for c in children)
    assert [ms(c.created_at) >= ms(h.finished_at) for c, h in zip(children, heads)] == [True, True]
    assert sched.clock.now_ms() < T + 2 * HOUR  # two fires, then the clock runs at real speed again


def test_time_zone_paused_and_a_failed_parent(sapi, sched):
    runtime = sapi.list_runtimes().runtimes[0].image_identifier
    la = job(sapi, sched, runtime, "la", schedule="0 9 * * *", timezone="America/Los_Angeles")
    assert sched.scheduler.next_fires()[0]["at_ms"] == ms(datetime(2026, 1, 15, 17, tzinfo=timezone.utc))
    sapi.update_job({"paused": True}, sched.project_id, la.id)
    assert sched.scheduler.next_fires() == []
    failing = job(sapi, sched, runtime, "failing", "scripts/fail.py", schedule="0 * * * *", timezone="UTC")
    after = job(sapi, sched, runtime, "after", parent_id=failing.id)
    sched.scheduler.fast_forward(T + 10 * HOUR, fires=1)
    wait_for(lambda: runs_of(sapi, sched.project_id, failing.id) or None, "the fire", timeout=60)
    idle(sched)
    [run] = runs_of(sapi, sched.project_id, failing.id)
    assert wait_run(sapi, sched.project_id, failing.id, run.id).status == "ENGINE_FAILED"
    assert runs_of(sapi, sched.project_id, after.id) == [] and runs_of(sapi, sched.project_id, la.id) == []
    with pytest.raises(Exception, match="not a cron expression"):
        job(sapi, sched, runtime, "bad", schedule="every hour")
    with pytest.raises(Exception, match="IANA time zone"):
        job(sapi, sched, runtime, "bad", schedule="0 * * * *", timezone="Mars/Olympus")


def test_a_fire_while_the_previous_run_is_active_starts_nothing(sapi, sched, caplog):
    runtime = sapi.list_runtimes().runtimes[0].image_identifier
    slow = job(sapi, sched, runtime, "slow", "scripts/block.py", schedule="*/5 * * * *", timezone="UTC")
    first = sapi.create_job_run({}, sched.project_id, slow.id)  # still running when the schedule fires
    with caplog.at_level(logging.WARNING, logger="localcml.jobs.scheduler"):
        sched.set_now(T + 5 * 60_000)  # 10:35: due
        wait_for(lambda: "schedule fired, no run started" in caplog.text or None, "the fire", timeout=30)
    assert [r.id for r in runs_of(sapi, sched.project_id, slow.id)] == [first.id]
    assert "already has an active run" in caplog.text
    sapi.stop_job_run(sched.project_id, slow.id, first.id)
