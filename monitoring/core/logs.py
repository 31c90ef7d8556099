"""Logging for job runs: readable key=value lines on stdout, secrets redacted, one VERDICT last.

Lines and redaction are ``cmlbase.logs``' (one redactor per process, shared with the local
workspace's code when it runs in the same process); this module adds the job's logger and the
VERDICT line.
"""

from __future__ import annotations

import logging
from typing import Any, TextIO

from cmlbase import logs
from cmlbase.logs import KV, REDACTOR, kv_value, register_secret

__all__ = ["KV", "REDACTOR", "configure_logging", "register_secret", "verdict_line"]


def configure_logging(job: str, level: str | int = "INFO", stream: TextIO | None = None) -> logging.Logger:
    """Send this process's logs to stdout as ``time level job=... logger: message`` lines.

    Called once by each job or CLI command, never by library modules.

    Returns:
        The job's own logger (``monitoring.jobs.<job>``).
    """
    logs.configure_logging(job, level, stream)
    return logging.getLogger(f"monitoring.jobs.{job}")


def verdict_line(job: str, status: str, summary: str, action: str, **fields: Any) -> str:
    """The one line on-call reads: ``VERDICT job=... status=... <fields> action=... -- summary``."""
    return f"VERDICT {KV(job=job, status=status, **fields)} action={kv_value(action)} -- {summary}"
