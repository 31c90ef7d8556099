"""The implementation coverage table of the local workspace, generated from the API v2 spec.

``python -m localcml.coverage > docs/local-workspace-coverage.md`` writes it (a test checks that
the file is up to date). Each operation of the spec is either implemented by a service (with
what differs from CML) or answers HTTP 501 naming itself (with why), as moto publishes its
``IMPLEMENTATION_COVERAGE.md``.
"""

from __future__ import annotations

import sys
from types import ModuleType

from localcml.applications import urls as applications
from localcml.core.spec import operations, spec
from localcml.datalake import urls as datalake
from localcml.experiments import urls as experiments
from localcml.jobs import urls as jobs
from localcml.models import urls as models
from localcml.projects import urls as projects
from localcml.registry import urls as registry
from localcml.runtimes import urls as runtimes
from localcml.unsupported import urls as unsupported

SERVICES: tuple[tuple[str, ModuleType], ...] = (
    ("projects", projects),
    ("jobs", jobs),
    ("models", models),
    ("registry", registry),
    ("experiments", experiments),
    ("applications", applications),
    ("runtimes", runtimes),
    ("data lake", datalake),
    ("not emulated", unsupported),
)


def rows() -> list[tuple[str, str, str, str, bool, str]]:
    """``(service, operation, method, HTTP, implemented, note)`` for every operation of the spec."""
    out = []
    ops = operations()
    for service, urls in SERVICES:
        implemented = getattr(urls, "OPERATIONS", {})
        refused = getattr(urls, "NOT_IMPLEMENTED", {})
        notes = getattr(urls, "NOTES", {})
        for op_id in sorted(set(implemented) | set(refused)):
            op = ops[op_id]
            note = notes.get(op_id, "") if op_id in implemented else refused[op_id]
            out.append((service, op_id, op.name, f"{op.method} {op.path}", op_id in implemented, note))
    return out


def markdown() -> str:
    """The whole coverage page."""
    table = rows()
    done = sum(1 for r in table if r[4])
    info = spec()["info"]
    lines = [
        "# Local CML workspace: API v2 coverage",
        "",
        f"Generated from the CML API v2 spec ({info.get('title') or 'API v2'}, version {info.get('version')}),",
        "by `python -m localcml.coverage`; `tests/local/test_spec_walk.py` checks that it is up to date",
        "and calls every operation. An operation the local workspace does not honour answers HTTP 501",
        "whose message names it and says why; none raises `AttributeError` in the `cmlapi` client.",
        "",
        f"**{done} of {len(table)} operations implemented**; {len(table) - done} answer 501.",
        "",
    ]
    for service, _urls in SERVICES:
        mine = [r for r in table if r[0] == service]
        if not mine:
            continue
        lines += [
            f"## {service}",
            "",
            "| operation | `cmlapi` method | HTTP | implemented | notes |",
            "|---|---|---|---|---|",
        ]
        for _s, op_id, method, http, ok, note in mine:
            mark = "yes" if ok else "501"
            lines.append(f"| {op_id} | `{method}` | `{http}` | {mark} | {note.replace('|', '/')} |")
        lines.append("")
    return "\n".join(lines)


def main() -> int:
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
