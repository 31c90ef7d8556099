"""Running one workflow as a CML job: arguments, config, logging, platform, verdict, exit code."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from monitoring.app.wiring import Wiring, build_context, load_project_config
from monitoring.core.errors import (
    EXIT_BUSY,
    EXIT_CONFIG,
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
from monitoring.core.logs import configure_logging, verdict_line
from monitoring.workflows.context import Context, Outcome

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
    EXIT_INTERNAL: "unexpected error (a bug): keep this log and report it; the next scheduled run retries",
}


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
    workflow: Callable[[Context], Outcome],
    argv: Sequence[str] | None = None,
    *,
    wiring: Wiring = build_context,
) -> int:
    """Run ``workflow`` as job ``job``; log a final VERDICT line; return the exit code (0 = success).

    Args:
        wiring: builds the run's context from config and project root (tests inject a platform).
    """
    args = parse_job_args(job, argv)
    log = configure_logging(job)
    try:
        root = Path(args.project_root).resolve()
        outcome = workflow(wiring(load_project_config(args.config, root), root))
    except MonitoringError as exc:
        log.error("%s", exc)
        summary = "; ".join(exc.problems)[:500] if isinstance(exc, ConfigError) else str(exc).splitlines()[0]
        log.info(
            verdict_line(
                job,
                "failed",
                summary,
                exc.action or FAILURE_ACTIONS[exc.exit_code],
                exit_code=exc.exit_code,
                error=type(exc).__name__,
                **exc.verdict_fields,
            )
        )
        return exc.exit_code
    except Exception as exc:
        log.exception("unexpected error")
        log.info(
            verdict_line(
                job, "failed", f"{type(exc).__name__}: {exc}", FAILURE_ACTIONS[EXIT_INTERNAL], exit_code=EXIT_INTERNAL
            )
        )
        return EXIT_INTERNAL
    logging.getLogger(f"monitoring.jobs.{job}").info(
        verdict_line(job, outcome.status, outcome.summary, outcome.action, **outcome.fields)
    )
    return outcome.exit_code
