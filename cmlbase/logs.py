"""Logging as both packages write it: readable key=value lines on stdout, secrets redacted.

One redactor per process (``REDACTOR``): a secret the workspace learns (a job's API key) or the
library learns (a model API key) is removed from every line this process writes, whoever logs it.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

#: Environment variables whose values are secrets wherever they appear.
SECRET_ENV_VARS = (
    "CDSW_APIV2_KEY",
    "CDSW_API_KEY",
    "CDSW_USER_API_KEY",
    "CML_MONITOR_MODEL_API_KEY",
    "CML_MONITOR_MODEL_ACCESS_KEY",
    "MODEL_ACCESS_KEY",
)
REDACTED = "***"

#: The words a key that names a secret holds (``api_key``, ``accessKey``, ``DB_PASSWORD``...).
SECRET_KEY_WORDS = r"access[_-]?key|api[_-]?key|authorization|credential|passw(?:or)?d|secret|token"
_SECRET_KEY = re.compile(rf"(?i)(?:{SECRET_KEY_WORDS})")
_PATTERNS = [
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{6,}"),
    re.compile(rf"(?i)(\"?(?:{SECRET_KEY_WORDS})\"?\s*[:=]\s*\"?)[^\s\",}}]{{4,}}"),
    re.compile(r"(://[^:/@\s]+:)[^@\s]+(@)"),
]


def names_a_secret(key: str) -> bool:
    """Whether a field's name says it holds a secret (its value is then never written out)."""
    return bool(_SECRET_KEY.search(key))


def kv_value(value: Any) -> str:
    """``value`` as a key=value line writes it: quoted when empty or holding spaces, quotes or ``=``."""
    text = str(value)
    if text == "" or re.search(r"[\s\"=]", text):
        return '"' + text.replace('"', "'") + '"'
    return text


class KV:
    """Lazily rendered ``key=value`` fields: ``log.info("window done %s", KV(accuracy=0.9))``."""

    def __init__(self, **fields: Any):
        self.fields = fields

    def __str__(self) -> str:
        return " ".join(f"{k}={kv_value(v)}" for k, v in self.fields.items() if v is not None)


class Redactor:
    """Removes secrets from text: known secret values, Bearer tokens, key=value secrets."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets: set[str] = {s for s in secrets if s and len(s) >= 4}

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            self.secrets.add(secret)

    def __call__(self, text: str) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        for pattern in _PATTERNS:
            text = pattern.sub(
                lambda m: m.group(1) + REDACTED + (m.group(2) if m.lastindex and m.lastindex > 1 else ""), text
            )
        return text


#: The process-wide redactor; anything that learns a secret (an access key) registers it here.
REDACTOR = Redactor(os.environ.get(v, "") for v in SECRET_ENV_VARS)


def register_secret(secret: str | None) -> None:
    """Redact ``secret`` from every line this process logs from now on."""
    REDACTOR.add(secret)


class RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return REDACTOR(super().format(record))


def configure_logging(job: str, level: str | int = "INFO", stream: TextIO | None = None) -> None:
    """Send this process's logs to stdout as ``time level job=... logger: message`` lines, redacted.

    Called once by each job, command or workspace process, never by library modules.
    """
    for var in SECRET_ENV_VARS:
        REDACTOR.add(os.environ.get(var))
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        RedactingFormatter(f"%(asctime)s %(levelname)s job={job} %(name)s: %(message)s", datefmt="%Y-%m-%dT%H:%M:%S%z")
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
