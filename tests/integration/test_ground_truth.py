"""The ground-truth job on the local workspace: labels from CRM files and SQL joined by business key, posted once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from monitoring.app.wiring import build_context
from monitoring.core.errors import PlatformError
from monitoring.state.ground_truth_ledger import GroundTruthLedger
from monitoring.workflows.ground_truth import ground_truth
from tests.chaos.label_checks import PostCounter
from tests.chaos.processes import kill_when
from tests.faults.rig import run_concurrently
from tests.integration.ground_truth_support import DAY, GROUND_TRUTH, HOUR, labelled, posted_by, predict_for, write_crm
from tests.integration.support import T0, short_sleep
from tests.project import merge
from tests.waiting import wait_for


def _iso(ms: int) -> str:
    from cmlbase.clock import iso_ms

    return iso_ms(ms)


def test_labels_from_files_join_by_business_key_once_and_every_miss_is_counted(make_pipeline):
    pipeline = make_pipeline(GROUND_TRUTH)
    ws, ctx = pipeline.ws, pipeline.ctx
    ws.set_now(T0 + HOUR)
    predict_for(pipeline, ["C-old"], seed=1)  # older than the 2-day lookback, inside the stale scan
    day3 = T0 + 3 * DAY
    ws.set_now(day3 + HOUR)
    first = predict_for(pipeline, [f"C-{i}" for i in range(12)], seed=2)
    ws.set_now(day3 + 2 * HOUR)
    again = predict_for(pipeline, ["C-5"], seed=3)  # predicted twice: the newest prediction gets the label
    closed = _iso(day3 + 3 * HOUR)
    rows = [{"customer_id": f"C-{i}", "failed": "yes" if i % 3 == 0 else "no", "closed_at": closed} for i in range(10)]
    rows += [
        {"customer_id": "C-1", "failed": "no", "closed_at": closed},  # the same row again: a duplicate
        {"customer_id": "C-2", "failed": "yes", "closed_at": closed},  # another label for C-2: conflicting
        {"customer_id": "C-unknown", "failed": "no", "closed_at": closed},
        {"customer_id": "C-old", "failed": "no", "closed_at": closed},
        {"customer_id": "C-10", "failed": "maybe", "closed_at": closed},  # unmappable
        {"customer_id": "", "failed": "no", "closed_at": closed},  # no key
        {"customer_id": "C-11", "failed": "no", "closed_at": "yesterday-ish"},  # unreadable event time
    ]
    write_crm(pipeline.root, "day1.csv", rows)
    ws.set_now(day3 + 4 * HOUR)
    out = ground_truth(ctx)
    f = out.fields
    assert (f["rows"], f["posted"], f["files"]) == (17, 10, 1), out.summary
    assert {k: f[k] for k in ("duplicate", "conflicting", "unknown_key", "too_old", "bad_label", "bad_row")} == {
        "duplicate": 1,
        "conflicting": 1,
        "unknown_key": 1,
        "too_old": 1,
        "bad_label": 1,
        "bad_row": 2,
    }
    assert f["watermark"] == closed and "not posted" in out.summary and f["report"] in out.action
    report = json.loads((pipeline.root / f["report"]).read_text())
    assert report["counts"]["posted"] == 10 and report["misses"]["bad_row"]["count"] == 2
    assert report["misses"]["too_old"]["samples"][0]["key"] == "C-old"
    assert report["misses"]["conflicting"]["samples"][0] == {
        "where": "row 12 (line 13) of crm/day1.csv",
        "key": "C-2",
        "label": 1,
        "prediction": first["C-2"],
        "kept": 0,
    }
    got = labelled(pipeline, T0, day3 + DAY)
    label_of = {u: m["final_label"] for u, m in got.items()}
    expected = {(again if i == 5 else first)[f"C-{i}"]: int(i % 3 == 0) for i in range(10)}
    assert label_of == expected  # mapped through model.label.mapping; C-5's newest prediction
    assert set(posted_by(got).values()) == {ctx.platform.run_id}

    # a re-run posts nothing: the file was read; an overlapping export posts only its new rows
    assert ground_truth(ctx).fields["posted"] == 0
    overlap = rows[:4] + [{"customer_id": "C-11", "failed": "yes", "closed_at": _iso(day3 + 5 * HOUR)}]
    write_crm(pipeline.root, "day2.csv", overlap)
    ws.set_now(day3 + 6 * HOUR)
    out = ground_truth(ctx)
    assert (out.fields["rows"], out.fields["posted"], out.fields["duplicate"], out.fields["files"]) == (5, 1, 4, 1)
    assert out.fields["watermark"] == _iso(day3 + 5 * HOUR)
    assert len(labelled(pipeline, T0, day3 + DAY)) == 11
    ledger = GroundTruthLedger(ctx.store.db, ctx.cfg.model.name)
    assert ledger.counts() == {"intent": 0, "done": 11}


def test_a_label_joins_the_prediction_made_before_its_outcome_and_a_resent_export_is_a_duplicate(make_pipeline):
    """Issue 20, defect 1: accounts predicted on day 1 and again on day 2; the day 1 export, appended to
    and read again after the day 2 predictions, put day 1 outcomes onto day 2 predictions (the newest
    within the lookback), and the true day 2 outcomes were then refused as conflicting."""
    pipeline = make_pipeline(GROUND_TRUTH)
    ws, ctx = pipeline.ws, pipeline.ctx
    accounts = [f"AC-{i:06d}" for i in range(6)]
    ws.set_now(T0 + 10 * HOUR)
    day1 = predict_for(pipeline, accounts, seed=1)
    day1_rows = [
        {"customer_id": a, "failed": "yes" if i < 3 else "no", "closed_at": _iso(T0 + 20 * HOUR)}
        for i, a in enumerate(accounts)
    ]
    write_crm(pipeline.root, "day1.csv", day1_rows[:4])
    ws.set_now(T0 + 21 * HOUR)
    assert ground_truth(ctx).fields["posted"] == 4
    ws.set_now(T0 + DAY + 10 * HOUR)  # 14 hours after the day 1 outcomes
    day2 = predict_for(pipeline, accounts, seed=2)
    write_crm(pipeline.root, "day1.csv", day1_rows)  # the day 1 export, appended to: read again
    ws.set_now(T0 + DAY + 11 * HOUR)
    out = ground_truth(ctx)
    f = out.fields
    assert (f["rows"], f["posted"], f["duplicate"], f["conflicting"]) == (6, 2, 4, 0), out.summary
    labels = {u: m["final_label"] for u, m in labelled(pipeline, T0, T0 + 2 * DAY).items()}
    assert labels == {day1[a]: int(i < 3) for i, a in enumerate(accounts)}  # day 1 outcomes on day 1 predictions

    day2_rows = [
        {"customer_id": a, "failed": "no" if i < 3 else "yes", "closed_at": _iso(T0 + DAY + 20 * HOUR)}
        for i, a in enumerate(accounts)
    ]
    write_crm(pipeline.root, "day2.csv", day2_rows)
    ws.set_now(T0 + DAY + 21 * HOUR)
    f = ground_truth(ctx).fields
    assert (f["posted"], f["conflicting"], f["duplicate"]) == (6, 0, 0), f
    labels = {u: m["final_label"] for u, m in labelled(pipeline, T0, T0 + 2 * DAY).items()}
    assert {a: labels[day2[a]] for a in accounts} == {a: int(i >= 3) for i, a in enumerate(accounts)}
    assert {a: labels[day1[a]] for a in accounts} == {a: int(i < 3) for i, a in enumerate(accounts)}

    # a row dated before every prediction of its key in the lookback is never joined to a later one
    write_crm(pipeline.root, "early.csv", [{"customer_id": "AC-000000", "failed": "yes", "closed_at": _iso(T0)}])
    report = ground_truth(ctx)
    assert report.fields["before_prediction"] == 1 and report.fields["posted"] == 0
    sample = json.loads((pipeline.root / report.fields["report"]).read_text())["misses"]["before_prediction"]
    assert sample["samples"][0]["time"] == _iso(T0).replace("Z", ".000Z")


def test_failed_posts_stay_intents_and_the_next_run_posts_each_exactly_once(make_pipeline):
    pipeline = make_pipeline(GROUND_TRUTH)
    ws, ctx = pipeline.ws, pipeline.ctx
    ws.set_now(T0 + HOUR)
    uuids = predict_for(pipeline, [f"C-{i}" for i in range(6)])
    out = ground_truth(ctx)  # the first export has not landed: nothing to do, and the VERDICT says where it looked
    assert (out.fields["rows"], out.fields["files"]) == (0, 0) and "no file matches 'crm/*.csv' yet" in out.action
    closed = _iso(T0 + HOUR + 60_000)  # a minute after the predictions: an outcome joins an earlier prediction
    write_crm(pipeline.root, "day1.csv", [{"customer_id": c, "failed": "no", "closed_at": closed} for c in uuids])
    ws.set_now(T0 + HOUR + 2 * 60_000)
    ws.inject("metrics.track_delayed_metrics=unavailable always")
    with pytest.raises(PlatformError) as failed:  # never a success for writes that failed: exit 3
        ground_truth(ctx)
    fields = failed.value.verdict_fields
    assert (fields["posted"], fields["not_posted"], fields["rows"]) == (0, 6, 6), fields
    assert "6 label posts failed: the model metrics store failed" in str(failed.value)
    assert "next run posts them" in str(failed.value) and "metrics store" in failed.value.action
    ledger = GroundTruthLedger(ctx.store.db, ctx.cfg.model.name)
    assert ledger.counts() == {"intent": 6, "done": 0}
    ws.faults.clear()
    # one label got through before the failure was noticed (a post answered but not marked done)
    one = uuids["C-0"]
    ctx.platform.metrics.post_labels([(one, {"final_label": 0, "ground_truth_run": "the-killed-run"})])
    out = ground_truth(ctx)  # too soon: a post of the failed run might still be in flight
    assert (out.fields["intents_waiting"], out.fields["reposted"]) == (6, 0)
    ws.set_now(T0 + HOUR + 20 * 60_000)  # settle_after (15m) has passed
    out = ground_truth(ctx)
    assert out.fields["reposted"] == 5 and out.fields["posted"] == 0 and out.fields["rows"] == 0
    assert ledger.counts() == {"intent": 0, "done": 6}
    runs = posted_by(labelled(pipeline, T0, T0 + DAY))
    assert runs.pop(one) == "the-killed-run"  # read back, not posted again
    assert set(runs.values()) == {ctx.platform.run_id} and len(runs) == 5


def test_two_runs_settling_the_same_intents_post_each_label_once(make_pipeline):
    """Issue 20: every path that posts labels claims them first; two runs that find the same unfinished
    intents (a manual run beside the scheduled one) settled and posted each of them, twice."""
    pipeline = make_pipeline(merge(GROUND_TRUTH, {"ground_truth": {"chunk_rows": 50}}))
    ws, ctx = pipeline.ws, pipeline.ctx
    ws.set_now(T0 + HOUR)
    uuids = predict_for(pipeline, [f"C-{i}" for i in range(20)])
    write_crm(
        pipeline.root, "day1.csv", [{"customer_id": c, "failed": "no", "closed_at": _iso(T0 + 2 * HOUR)} for c in uuids]
    )
    ws.set_now(T0 + 3 * HOUR)
    ws.inject("metrics.track_delayed_metrics=unavailable always")
    with pytest.raises(PlatformError):
        ground_truth(ctx)
    ws.faults.clear()
    ws.set_now(T0 + 3 * HOUR + 20 * 60_000)  # settle_after (15m) has passed
    ws.inject("latency.metrics=delay:100ms always")  # both runs read the records back before either posts
    posts = PostCounter(ws.workspace_dir / "metrics.db", ctx.cfg.windows.label_key)
    runs = []
    for name in ("scheduled", "manual"):
        run = build_context(pipeline.cfg, pipeline.root, clock=ws.clock, sleep=short_sleep)
        run.platform.run_id = name
        runs.append(run)
    results = run_concurrently(*(lambda run=run: ground_truth(run) for run in runs))
    assert all(not isinstance(r, Exception) for r in results), results
    assert sum(r.fields.get("reposted", 0) for r in results) == 20, [r.fields for r in results]
    assert posts.assert_none_twice() == 20
    assert GroundTruthLedger(ctx.store.db, ctx.cfg.model.name).counts() == {"intent": 0, "done": 20}
    assert set(posted_by(labelled(pipeline, T0, T0 + DAY))) == set(uuids.values())


def test_a_run_killed_mid_post_leaves_nothing_posted_twice_or_lost(make_pipeline):
    """A real SIGKILL of the job process while it posts; the next run settles its intents by reading back."""
    pipeline = make_pipeline(merge(GROUND_TRUTH, {"ground_truth": {"chunk_rows": 10}}))
    ws, ctx = pipeline.ws, pipeline.ctx
    ws.set_now(T0 + HOUR)
    uuids = predict_for(pipeline, [f"C-{i}" for i in range(60)])
    closed = _iso(T0 + HOUR + 60_000)
    rows = [{"customer_id": c, "failed": "yes" if i % 2 else "no", "closed_at": closed} for i, c in enumerate(uuids)]
    write_crm(pipeline.root, "day1.csv", rows)
    ws.set_now(T0 + 2 * HOUR)
    ws.inject("latency.metrics=delay:150ms always")  # posts take a while: the kill lands in the middle
    env = {**os.environ, "CDSW_ENGINE_ID": "killed-run"}
    job = subprocess.Popen(
        [sys.executable, "jobs/ground_truth.py", "--project-root", str(pipeline.root)],
        cwd=pipeline.root,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        kill_when(lambda: len(labelled(pipeline, T0, T0 + DAY)) >= 5, lambda _: job.pid, "some labels posted")
    finally:
        job.wait(timeout=30)
    ws.faults.clear()
    # a post the killed process sent may still be served (the workspace answers a dead client too):
    # wait (bounded) until the store stops changing, as settle_after waits in production
    seen = {"count": -1, "since": 0.0}

    def settled() -> bool:  # unchanged for a second: far more than the 150 ms a post is held
        count = len(labelled(pipeline, T0, T0 + DAY))
        if count != seen["count"]:
            seen.update(count=count, since=time.monotonic())
        return time.monotonic() - seen["since"] > 1.0

    wait_for(settled, "posts in flight from the killed run to land", timeout=30.0)
    before = posted_by(labelled(pipeline, T0, T0 + DAY))
    ws.set_now(T0 + 2 * HOUR + 20 * 60_000)  # settle_after (15m) has passed
    ledger = GroundTruthLedger(ctx.store.db, ctx.cfg.model.name)
    assert set(before.values()) == {"killed-run"} and 5 <= len(before) < 60, "the kill did not land mid-post"
    assert ledger.counts()["intent"] > 0

    out = ground_truth(ctx)
    after = posted_by(labelled(pipeline, T0, T0 + DAY))
    assert set(after) == set(uuids.values())  # every label is in: none lost
    assert {u: after[u] for u in before} == before  # none posted before the kill was posted again
    mine = [u for u, run in after.items() if run == ctx.platform.run_id]
    assert len(mine) == out.fields["posted"] + out.fields["reposted"]  # each posted once by this run
    assert len(mine) == 60 - len(before)  # and nothing else: every other label is the killed run's
    assert ledger.counts() == {"intent": 0, "done": 60}
    final = labelled(pipeline, T0, T0 + DAY)
    assert {u: m["final_label"] for u, m in final.items()} == {
        uuids[r["customer_id"]]: int(r["failed"] == "yes") for r in rows
    }
    assert ground_truth(ctx).fields["posted"] == 0
