"""Running one workflow as a CML job: arguments, config, logging, platform, verdict, exit code."""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Callable, Sequence

from monitoring.config import CONFIG_ENV, DEFAULT_CONFIG, load_config
from monitoring.errors import (EXIT_BUSY, EXIT_CONFIG, ConfigError, EXIT_DATA, EXIT_INTERNAL, EXIT_PLATFORM,
                               EXIT_REDEPLOY_FAILED, MonitoringError)
from monitoring.logs import configure_logging, verdict_line
from monitoring.workflows.context import Context, Outcome

#: What on-call should do when a job fails, by exit code (README "Exit codes" has the same table).
FAILURE_ACTIONS = {
    EXIT_CONFIG: "fix the configuration or environment variable named above, then re-run the job",
    EXIT_PLATFORM: "CML refused or did not answer after retries: check the workspace, model and API key, then re-run",
    EXIT_DATA: "check the data named above (metrics records, labels, artifacts); the model was not changed",
    EXIT_REDEPLOY_FAILED: "the previous deployment serves; read the error above, fix it, then re-run redeploy",
    EXIT_BUSY: "another run holds this work; wait for it to finish, then re-run if still needed",
    EXIT_INTERNAL: "unexpected error (a bug): keep this log and report it; the next scheduled run retries",
}


def parse_job_args(job: str, argv: Sequence[str] | None) -> argparse.Namespace:
    """Known options only: CML's job wrapper adds arguments such as ``-f <file>``, which are ignored."""
    parser = argparse.ArgumentParser(prog=job, add_help=True)
    parser.add_argument("--config", default=None, help="pipeline YAML (default $CML_MONITOR_CONFIG or config/pipeline.yaml)")
    parser.add_argument("--project-root", default=os.getcwd(), help="the project directory (default: working dir)")
    args, _ = parser.parse_known_args(argv)
    return args


def build_context(config: str | None, project_root: str | Path) -> Context:
    from monitoring.cmlclient import connect
    from monitoring.store import StateStore

    root = Path(project_root).resolve()
    cfg = load_config(config or os.environ.get(CONFIG_ENV) or root / DEFAULT_CONFIG)
    platform = connect(cfg, root)
    return Context(cfg, platform, StateStore(cfg.state.url, base_dir=root), root)


def run_job(job: str, workflow: Callable[[Context], Outcome], argv: Sequence[str] | None = None) -> int:
    """Run ``workflow`` as job ``job``; log a final VERDICT line; return the exit code (0 = success)."""
    args = parse_job_args(job, argv)
    log = configure_logging(job)
    try:
        outcome = workflow(build_context(args.config, args.project_root))
    except MonitoringError as exc:
        log.error("%s", exc)
        summary = "; ".join(exc.problems)[:500] if isinstance(exc, ConfigError) else str(exc).splitlines()[0]
        log.info(verdict_line(job, "failed", summary, FAILURE_ACTIONS[exc.exit_code],
                              exit_code=exc.exit_code, error=type(exc).__name__))
        return exc.exit_code
    except Exception as exc:  # noqa: BLE001 - the verdict must be the last line, whatever happened
        log.exception("unexpected error")
        log.info(verdict_line(job, "failed", f"{type(exc).__name__}: {exc}", FAILURE_ACTIONS[EXIT_INTERNAL],
                              exit_code=EXIT_INTERNAL))
        return EXIT_INTERNAL
    logging.getLogger(f"monitoring.jobs.{job}").info(
        verdict_line(job, outcome.status, outcome.summary, outcome.action, **outcome.fields))
    return outcome.exit_code
