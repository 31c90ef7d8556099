"""The operations no local service honours, grouped by the part of CML they belong to, with the reason.

Each answers HTTP 501 (gRPC UNIMPLEMENTED) with a message naming the operation and this reason.
"""

from __future__ import annotations

from localcml.core.spec import operations

#: Path prefix (after ``/api/v2/``) -> why the local workspace does not emulate it.
FAMILIES = {
    "amps": "AMP catalogues are not emulated; create the project and its jobs, models and applications instead",
    "copilot": "Copilot is not emulated",
    "cpuprofiles": "resource profiles are not enforced locally",
    "resourcegroup": "resource groups are not enforced locally",
    "resourcegroups": "resource groups are not enforced locally",
    "dashboardsarchive": "workspace dashboards are not emulated",
    "default-quota": "quotas are not enforced locally",
    "groupsquota": "quotas are not enforced locally",
    "usersquota": "quotas are not enforced locally",
    "userslabels": "quotas are not enforced locally",
    "nodelabels": "there are no accelerator nodes locally",
    "diagnostics": "diagnostic bundles are not emulated; read W/daemon.log and the run and replica logs",
    "projects/{project_id}/files": "project files are the project's directory on disk; read and write them there",
    "newsfeeds": "news feeds are not emulated",
    "site": "site administration is not emulated (one local user)",
    "sync": "user and team synchronisation is not emulated (one local user)",
    "teams": "teams are not emulated (one local user)",
    "users": "user administration and API key management are not emulated (one local user, keys in W/secrets.json)",
    "ts_data": "usage time series are not emulated",
    "usage": "usage accounting is not emulated",
    "workloads": "workload accounting is not emulated",
    "workloadstatus": "workload accounting is not emulated",
    "workloadtypes": "workload accounting is not emulated",
}


def _family(path: str) -> str | None:
    rest = path.removeprefix("/api/v2/")
    matches = [f for f in FAMILIES if rest == f or rest.startswith(f + "/") or rest.startswith(f + ":")]
    return max(matches, key=len) if matches else None


NOT_IMPLEMENTED = {
    op.operation_id: FAMILIES[family] for op in operations().values() if (family := _family(op.path)) is not None
}
