"""The ground-truth job on a feed of export files with mishaps: an empty file, a malformed line and a file that
cannot be read never stop the feed; each is counted, sampled or quarantined, and said in the VERDICT."""

from __future__ import annotations

import contextlib
import io
import json

from monitoring.app.demo import verdict_fields
from monitoring.app.jobrun import run_job
from monitoring.core.errors import EXIT_OK
from monitoring.workflows.ground_truth import ground_truth
from tests.integration.ground_truth_support import DAY, GROUND_TRUTH, HOUR, labelled, predict_for, write_crm
from tests.integration.support import T0

HEADER = "customer_id,failed,closed_at\n"


def _job(pipeline) -> tuple[int, dict[str, str], str]:
    """The ground_truth job as CML runs it (arguments, config, logging, VERDICT, exit code), in process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run_job(
            "ground_truth",
            ground_truth,
            ["--project-root", str(pipeline.root), "-f", "x"],
            wiring=lambda cfg, root: pipeline.ctx,
        )
    return code, verdict_fields(out.getvalue()), out.getvalue()


def test_an_empty_file_a_malformed_line_and_an_unreadable_file_never_stop_the_feed(make_pipeline):
    """Issue 20, defects 2 and 3: a 0-byte export made every run exit 4 until a person deleted it, and one
    unquoted comma stopped its whole file and every run after it."""
    pipeline = make_pipeline(GROUND_TRUTH)
    ws, root = pipeline.ws, pipeline.root
    ws.set_now(T0 + HOUR)
    uuids = predict_for(pipeline, [f"C-{i}" for i in range(12)])
    closed = _iso(T0 + 90 * 60_000)  # half an hour after the predictions
    write_crm(root, "day1.csv", [{"customer_id": f"C-{i}", "failed": "yes", "closed_at": closed} for i in range(3)])
    (root / "crm" / "day2.csv").write_bytes(b"")  # the export has not written it yet
    lines = [f"C-{i},no,{closed}" for i in range(3, 8)]
    lines[1] = f"C-4,no,unquoted, comma,{closed}"  # line 3: five fields
    (root / "crm" / "day3.csv").write_text(HEADER + "\n".join(lines) + "\n")
    (root / "crm" / "day4.csv").write_bytes(HEADER.encode() + b"C-8,\xff\xfeyes\x00,2026\n")  # not text at all
    write_crm(root, "day5.csv", [{"customer_id": "C-9", "failed": "no", "closed_at": closed}])
    ws.set_now(T0 + 2 * HOUR)

    code, verdict, log_text = _job(pipeline)
    assert code == EXIT_OK, log_text[-3000:]
    assert (verdict["posted"], verdict["bad_row"], verdict["files"]) == ("8", "1", "3"), verdict
    assert (verdict["empty_files"], verdict["quarantined"]) == ("1", "1")
    assert "fix or re-export crm/day4.csv: it cannot be read as csv: not UTF-8 text" in verdict["action"]
    assert "1 files quarantined" in verdict["summary"]
    report = json.loads((root / verdict["report"]).read_text())
    assert report["empty_files"] == ["crm/day2.csv"]
    assert report["quarantined"][0]["file"] == "crm/day4.csv"
    assert report["misses"]["bad_row"]["samples"] == [
        {
            "where": "row 2 (line 3) of crm/day3.csv",
            "problem": "expected 3 fields, saw 5",
            "line": f"C-4,no,unquoted, comma,{closed}",
        }
    ]
    posted = {u for u in labelled(pipeline, T0, T0 + DAY)}
    assert posted == {uuids[f"C-{i}"] for i in (0, 1, 2, 3, 5, 6, 7, 9)}

    # the next run: the quarantined file is left alone (still said), the empty one is read once written
    write_crm(root, "day2.csv", [{"customer_id": "C-10", "failed": "yes", "closed_at": closed}])
    code, verdict, _ = _job(pipeline)
    assert (verdict["posted"], verdict["files"], verdict["quarantined"], verdict.get("empty_files")) == (
        "1",
        "1",
        "1",
        None,
    ), verdict
    # fixed and re-exported: read, its row posted; the fixed line of day3 too
    write_crm(root, "day4.csv", [{"customer_id": "C-8", "failed": "yes", "closed_at": closed}])
    (root / "crm" / "day3.csv").write_text(HEADER + "\n".join(lines).replace("unquoted, comma,", "") + "\n")
    code, verdict, _ = _job(pipeline)
    assert (verdict["posted"], verdict["duplicate"], verdict.get("quarantined")) == ("2", "4", None), verdict
    assert len(labelled(pipeline, T0, T0 + DAY)) == 11


def _iso(ms: int) -> str:
    from cmlbase.clock import iso_ms

    return iso_ms(ms)
