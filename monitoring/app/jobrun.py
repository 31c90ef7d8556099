"""Running one workflow as a CML job: arguments, config, logging, platform, verdict, exit code."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from monitoring.app.preflight import preflight
from monitoring.app.wiring import Wiring, build_context, load_project_config
from monitoring.core.durations import to_ms
from monitoring.core.errors import (
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_CONTRACT,
    EXIT_DATA,
    EXIT_INTERNAL,
    EXIT_LOCKED,
    EXIT_NO_SPACE,
    EXIT_PLATFORM,
    EXIT_REDEPLOY_FAILED,
    EXIT_STORE,
    ConfigError,
    MonitoringError,
)
from monitoring.core.logs import KV, REDACTOR, configure_logging, verdict_line
from monitoring.state.backup_rotation import rotate
from monitoring.state.job_runs import JobRunRow, record_job_run
from monitoring.workflows.context import Context, OfflineContext, Outcome, Training

#: What on-call should do when a job fails, by exit code (README "Exit codes" has the same table).
FAILURE_ACTIONS = {
    EXIT_CONFIG: "fix the configuration or environment variable named above, then re-run the job",
    EXIT_PLATFORM: "CML refused or did not answer after retries: check the workspace, model and API key, then re-run",
    EXIT_DATA: "check the data named above (metrics records, labels, artifacts); the model was not changed",
    EXIT_REDEPLOY_FAILED: "the previous deployment serves; read the error above, fix it, then re-run redeploy",
    EXIT_BUSY: "another run holds this work; wait for it to finish, then re-run if still needed",
    EXIT_STORE: "the state store is damaged, foreign or missing; nothing was changed: run `cml-monitor state check`",
    EXIT_NO_SPACE: "free space on the file system named above, then re-run; the failed write was rolled back",
    EXIT_LOCKED: "another process held the store's lock too long; let it finish or stop it, then re-run",
    EXIT_CONTRACT: "the retraining rows broke the data contract (column and rule above): fix the feed, or edit the "
    "contract if the change is real; the champion keeps serving",
    EXIT_INTERNAL: "unexpected error (a bug): keep this log and report it; the next scheduled run retries",
}


#: Exit codes of a store that cannot take a write: the run is not recorded in it.
STORE_FAILURES = frozenset({EXIT_STORE, EXIT_NO_SPACE, EXIT_LOCKED})


def parse_job_args(job: str, argv: Sequence[str] | None) -> argparse.Namespace:
    """Known options only: CML's job wrapper adds arguments such as ``-f <file>``, which are ignored."""
    parser = argparse.ArgumentParser(prog=job, add_help=True)
    parser.add_argument(
        "--config", default=None, help="pipeline YAML (default $CML_MONITOR_CONFIG or config/pipeline.yaml)"
    )
    parser.add_argument("--project-root", default=os.getcwd(), help="the project directory (default: working dir)")
    args, _ = parser.parse_known_args(argv)
    return args


def run_job(
    job: str,
    workflow: Callable[[Context], Outcome] | Callable[[OfflineContext], Outcome],
    argv: Sequence[str] | None = None,
    *,
    wiring: Wiring = build_context,
) -> int:
    """Run ``workflow`` as job ``job``; log a final VERDICT line; return the exit code (0 = success).

    What the job will use is checked first (``preflight``): a configuration error creates nothing,
    neither state store nor history marker nor local workspace. The run is also recorded in the
    state store (``state.job_runs``) when the store was reached and can take a write, for the
    dashboard's "last run of each job".

    Args:
        wiring: builds the run's context from config and project root (tests inject a platform).
    """
    args = parse_job_args(job, argv)
    log = configure_logging(job)
    ctx: Training | None = None
    try:
        root = Path(args.project_root).resolve()
        cfg = load_project_config(args.config, root)
        preflight(cfg, root, [job])
        ctx = wiring(cfg, root)
        outcome = workflow(ctx)
    except MonitoringError as exc:
        log.error("%s", exc)
        summary = "; ".join(exc.problems)[:500] if isinstance(exc, ConfigError) else str(exc).splitlines()[0]
        fields = {"exit_code": exc.exit_code, "error": type(exc).__name__, **exc.verdict_fields}
        outcome = Outcome("failed", summary, exc.action or FAILURE_ACTIONS[exc.exit_code], fields, exc.exit_code)
    except Exception as exc:
        log.exception("unexpected error")
        fields = {"exit_code": EXIT_INTERNAL}
        outcome = Outcome(
            "failed", f"{type(exc).__name__}: {exc}", FAILURE_ACTIONS[EXIT_INTERNAL], fields, EXIT_INTERNAL
        )
    if isinstance(ctx, Context) and outcome.exit_code == 0:
        _back_up(ctx)
    if isinstance(ctx, Context) and outcome.exit_code not in STORE_FAILURES:
        _record(ctx, job, outcome)  # before the VERDICT, which stays the log's last line
    logging.getLogger(f"monitoring.jobs.{job}").info(
        verdict_line(job, outcome.status, outcome.summary, outcome.action, **outcome.fields)
    )
    return outcome.exit_code


def _back_up(ctx: Context) -> None:
    """The scheduled backup of the state store, when due; a failure costs a warning, never the run."""
    state, log = ctx.cfg.state, logging.getLogger(__name__)
    try:
        done = rotate(
            ctx.store.db, ctx.project_root, ctx.platform.clock.now_ms(), to_ms(state.backup_every), state.backup_keep
        )
    except Exception as exc:  # noqa: BLE001 - a full disk, a lock: the run's outcome stands, the next one tries again
        log.warning(
            "the scheduled state-store backup was not written; the next successful run tries again %s",
            KV(error=str(exc)),
        )
        return
    if done.written is not None:
        log.info(
            "state store backed up %s",
            KV(
                file=str(done.written),
                kept=done.kept,
                removed=len(done.removed),
                restore="cml-monitor state restore FILE",
            ),
        )


def _record(ctx: Context, job: str, outcome: Outcome) -> None:
    """Record the run in the state store; a store that refuses only costs a warning (the VERDICT stands)."""
    fields = {k: v for k, v in outcome.fields.items() if k != "exit_code"}
    run = JobRunRow(
        job,
        ctx.platform.run_id,
        ctx.cfg.model.name,
        outcome.status,
        outcome.exit_code,
        REDACTOR(outcome.summary),
        REDACTOR(outcome.action),
        {k: REDACTOR(str(v)) if isinstance(v, str) else v for k, v in fields.items()},
        ctx.platform.clock.now_ms(),
    )
    try:
        record_job_run(ctx.store, run)
    except Exception as exc:  # noqa: BLE001 - recording is for the dashboard; the job's outcome must not change
        logging.getLogger(__name__).warning("could not record the job run in the state store: %s", exc)
