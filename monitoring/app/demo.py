"""The closed loop on a fresh local workspace, run by the workspace's scheduler as CML would run it.

The rehearsal starts ``cycles`` schedule periods in the past: bootstrap and ``graph apply`` happen
there, then for each cycle the workspace's scheduler fast-forwards its clock to the head job's
next cron fire and fires it (CML then runs the chain: dependents start only when their parent
succeeded). The demo waits for the chain and reads each job's VERDICT line from its run log, as
on-call would. It ends on real time: the records lie in the past, and code run against the
workspace afterwards stamps and reads its own records at the time it really runs.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
from pathlib import Path
from typing import Any

from cmlbase.clock import SystemClock, WarpClock, iso_ms
from monitoring.app import graph
from monitoring.app.application import apply_application
from monitoring.app.preflight import demo_jobs, preflight
from monitoring.app.wiring import build_context
from monitoring.cmlclient import local_workspace
from monitoring.config.metric_registry import headline_metric, metric_spec
from monitoring.config.pipeline import PipelineConfig
from monitoring.core.durations import to_ms
from monitoring.core.errors import RedeployError
from monitoring.core.logs import configure_logging
from monitoring.domain.decisions.policy_results import fmt_value
from monitoring.domain.windows.headline import policy_metric
from monitoring.state.marker import remove_marker
from monitoring.workflows.bootstrap import bootstrap
from monitoring.workflows.context import Context
from monitoring.workflows.traffic import REPLAY_EXHAUSTED

log = logging.getLogger(__name__)

CHAIN_TIMEOUT_S = 600.0
POLL_S = 0.2
COLUMNS = ("cycle", "time", "deployed_version", "predictions", "labelled", "accuracy", "decision")
_KV = re.compile(r'(\w+)=("[^"]*"|\S+)')


def verdict_fields(log_text: str) -> dict[str, str]:
    """Fields of the last VERDICT line of a job log (what on-call reads in the CML UI)."""
    lines = [ln for ln in log_text.splitlines() if "VERDICT " in ln]
    if not lines:
        return {}
    body = lines[-1].split("VERDICT ", 1)[1].split(" -- ", 1)
    fields = {k: v.strip('"') for k, v in _KV.findall(body[0])}
    fields["summary"] = body[1] if len(body) > 1 else ""
    return fields


def fresh_start(cfg: PipelineConfig, root: Path, out_dir: Path) -> None:
    """Remove the workspace, the pipeline's state (and its history marker) and artifacts, and old output."""
    local_workspace.reset(cfg, root)
    if cfg.state.url.startswith("sqlite:///"):
        db = root / cfg.state.url[len("sqlite:///") :]
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
    remove_marker(root, cfg.model.name)
    shutil.rmtree(root / cfg.state.artifacts_dir, ignore_errors=True)
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)


def wait_fire(ctx: Context, head_id: str, seen: set[str]) -> int:
    """Wait for the scheduler's next run of the head job; returns when it was created (workspace clock, ms)."""
    deadline = time.monotonic() + CHAIN_TIMEOUT_S
    while True:
        runs = [r for r in ctx.platform.api.job_runs(head_id, limit=5) if r.id not in seen]
        if runs:
            return runs[0].created_ms or ctx.platform.clock.now_ms()
        if time.monotonic() > deadline:
            raise RedeployError(f"the scheduler did not fire the head job within {CHAIN_TIMEOUT_S:g}s")
        time.sleep(POLL_S)


def wait_chain(ctx: Context, job_ids: list[str], seen: set[str], workspace: Path) -> dict[str, dict[str, str]]:
    """Wait for this cycle's run of each job in chain order; returns each job's verdict fields."""
    verdicts: dict[str, dict[str, str]] = {}
    deadline = time.monotonic() + CHAIN_TIMEOUT_S
    for job_id in job_ids:
        while True:
            runs = [r for r in ctx.platform.api.job_runs(job_id, limit=5) if r.id not in seen]
            if runs and runs[0].finished:
                run = runs[0]
                seen.add(run.id)
                logfile = workspace / "runs" / f"{run.id}.log"
                verdicts[job_id] = verdict_fields(logfile.read_text() if logfile.exists() else "")
                verdicts[job_id]["run_status"] = run.status
                break
            if time.monotonic() > deadline:
                raise RedeployError(f"the job chain did not finish within {CHAIN_TIMEOUT_S:g}s")
            time.sleep(POLL_S)
        if not run.succeeded:
            break  # CML starts no dependent of a failed run
    return verdicts


def cycle_row(ctx: Context, cycle: int, now_ms: int, verdicts: list[dict[str, str]]) -> dict[str, Any]:
    model = ctx.cfg.model.name
    current = ctx.store.current_deployment(model)
    decision = ctx.store.latest_decision(model)
    traffic = verdicts[0] if verdicts else {}
    fresh = decision is not None and decision.created_ms >= now_ms
    values = decision.values if fresh else {}
    metric = headline_metric(ctx.cfg.model.task, policy_metric(ctx.cfg.thresholds.policies))
    value = values.get(metric)
    return {
        "cycle": cycle,
        "time": iso_ms(now_ms),
        "deployed_version": current.version if current else None,
        "predictions": int(traffic.get("predictions", 0) or 0),
        "labelled": int(values.get("labelled", 0) or 0),
        metric: round(value, 4) if isinstance(value, float) else None,
        "decision": decision.action.value if fresh else "chain failed",
        "decision_id": decision.id if fresh else None,
        "jobs": {v.get("job", "?"): v.get("status", v.get("run_status")) for v in verdicts},
    }


def replay_over(verdicts: list[dict[str, str]]) -> bool:
    """Whether this cycle's traffic run found the replayed data set exhausted (nothing new to judge)."""
    return bool(verdicts) and verdicts[0].get("status") == REPLAY_EXHAUSTED


def shown(metric: str, value: float | None) -> str:
    """A summary cell: a metric between 0 and 1 with 3 decimals (accuracy 0.912), others as the
    thresholds show them (an MAE of 61,250.5)."""
    if value is None:
        return "-"
    spec = metric_spec(metric)
    return f"{value:.3f}" if (spec.low, spec.high) == (0.0, 1.0) else fmt_value(value)


def print_row(row: dict[str, Any], metric: str) -> None:
    acc = shown(metric, row[metric])
    print(
        f"{row['cycle']:>5}  {row['time']:<20}  {str(row['deployed_version']):<8} {row['predictions']:>11}  "
        f"{row['labelled']:>8}  {acc:>8}  {row['decision']}",
        flush=True,
    )


def run_demo(cfg: PipelineConfig, root: Path, out_dir: Path, cycles: int = 10, config: str | None = None) -> int:
    """Run the demo; writes ``summary.json`` and ``report.html`` into ``out_dir``. Returns 0.

    Args:
        config: the config file the jobs read, relative to ``root`` (``graph apply --config``).

    Raises:
        ConfigError, DataError: from ``preflight``, before anything is removed or created.
    """
    configure_logging("demo", level="WARNING")
    out_dir = out_dir if out_dir.is_absolute() else root / out_dir
    preflight(cfg, root, demo_jobs(cfg))  # before the old workspace, state and output are removed
    fresh_start(cfg, root, out_dir)
    workspace = local_workspace.workspace_dir(cfg, root)
    clock: WarpClock | None = None
    try:
        env = local_workspace.activate(cfg, root)
        clock = WarpClock(env["CML_MONITOR_CLOCK_FILE"])
        window, step = cfg.windows.length_ms, to_ms(cfg.scenario.cycle)
        real_now = SystemClock().now_ms()
        start = ((real_now - cycles * step) // window) * window  # the rehearsal ends before real time
        clock.set_now(start + 60_000)
        ctx = build_context(cfg, root, clock=clock)
        print(f"bootstrap: {bootstrap(ctx).summary}", flush=True)
        for change in graph.apply(ctx.platform.api, cfg, config=config):
            print(f"graph: {change.line()}", flush=True)
        if cfg.dashboard.enabled:
            print(f"graph: {apply_application(ctx.platform.api, cfg, config=config).line()}", flush=True)
        jobs = {j.name: j.id for j in ctx.platform.api.jobs()}
        chain = [jobs[s.name] for s in graph.ordered(cfg.jobs.graph)]
        seen: set[str] = set()
        metric = headline_metric(cfg.model.task, policy_metric(cfg.thresholds.policies))
        print(f"{'cycle':>5}  {'time':<20}  {'version':<8} {'predictions':>11}  {'labelled':>8}  {metric:>8}  decision")
        rows = []
        for cycle in range(1, cycles + 1):
            local_workspace.fast_forward(cfg, root, until_ms=real_now, fires=1)  # to the head job's next fire
            now = wait_fire(ctx, chain[0], seen)
            verdicts = wait_chain(ctx, chain, seen, workspace)
            rows.append(cycle_row(ctx, cycle, now, list(verdicts.values())))
            print_row(rows[-1], metric)
            if replay_over(list(verdicts.values())):
                print(f"demo: the replayed data set is exhausted at cycle {cycle}: no more cycles", flush=True)
                break
        (out_dir / "summary.json").write_text(json.dumps(rows, indent=2))
        from monitoring.app.report import write_report

        report = write_report(cfg, ctx.store, out_dir)
        print(f"wrote {out_dir / 'summary.json'} and {report}")
        redeploys = [r for r in rows if r["decision"] == "redeploy"]
        print(f"demo: {len(redeploys)} redeploy(s); now serving {rows[-1]['deployed_version'] if rows else '?'}")
    finally:
        if clock is not None:
            clock.set_now(SystemClock().now_ms())  # back on real time for whoever uses the workspace next
        local_workspace.stop(cfg, root)
    return 0
