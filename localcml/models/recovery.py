"""Deployments after a restart of the daemon: per model, the newest requested deployment wins.

The newest active deployment of a model is resumed: adopted if it is deployed and a replica of
it still serves (its dead replicas are restarted under supervision), else deployed again from
the start. While it comes up, the newest deployed older one keeps serving, as CML keeps the old
deployment until the new one serves, and is replaced once it does; every other older one is
stopped at once. Replica processes that no deployment claims are killed by the workspace.
A replica found only through W's record of it (its environment names another directory: W was
moved) is stopped, never adopted: the paths it was started with no longer hold.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from localcml.core.process_table import ProcessTable
from localcml.core.processes import Adopted
from localcml.models.pool import Replica, healthy

if TYPE_CHECKING:
    from localcml.models.deployments import Deployer

#: Statuses of a deployment that has (or will have) replicas.
ACTIVE = ("pending", "deploying", "deployed")


def replica_role(dep_id: str, index: int) -> str:
    """The process role of a deployment's replica (``CML_MONITOR_PROCESS``)."""
    return f"replica:{dep_id}:{index}"


def _indexes(dep: dict) -> range:
    return range(max(1, int(dep.get("replicas") or 1)))


def recover_deployments(deployer: Deployer, table: ProcessTable) -> None:
    """Take over the deployments a previous daemon left, and the replica processes it left running."""
    models: dict[str, list[dict]] = {}
    for dep in deployer.state.list("deployment"):
        if dep["status"] == "stopping":
            _kill_replicas(dep, table)
            deployer.set_status(dep["id"], "stopped")
        elif dep["status"] in ACTIVE:
            models.setdefault(dep["model_id"], []).append(dep)
    for deps in models.values():
        newest = deps[-1]
        deployed = [d for d in deps if d["status"] == "deployed"]
        serving = newest if newest["status"] == "deployed" else (deployed[-1] if deployed else None)
        for dep in deps:
            if dep is serving and _adopt(deployer, dep, table):
                continue
            _kill_replicas(dep, table)
            if dep is newest or dep is serving:
                why = "during this deployment" if dep is newest and dep is not serving else "and no replica of it ran"
                deployer.note(dep["id"], f"the workspace daemon restarted {why}; deploying again")
                deployer.start(dep["id"])
            else:
                deployer.set_status(dep["id"], "stopped")
                deployer.note(
                    dep["id"], f"deployment stopped: superseded by deployment {newest['id']}, requested later"
                )


def _kill_replicas(dep: dict, table: ProcessTable) -> None:
    for index in _indexes(dep):
        table.kill(replica_role(dep["id"], index))


def _adopt(deployer: Deployer, dep: dict, table: ProcessTable) -> bool:
    """Serve a deployed deployment again: replicas still healthy are kept, the others restarted.

    Returns:
        False (and nothing done) when no replica of it is healthy: it must be deployed again.
    """
    replicas, kept = [], []
    for index in _indexes(dep):
        replica = Replica(index, None, deployer.root / dep["id"] / f"replica-{index}.ready", alive=False)
        found = table.claim(replica_role(dep["id"], index))
        if found is not None and not found.marked:
            deployer.note(
                dep["id"], f"replica {index} (pid {found.pid}) was started for another workspace path: stopped"
            )
            found = None  # its environment names paths that no longer hold (W was moved): never adopted
        try:
            port = int(json.loads(replica.ready_file.read_text())["port"]) if found else None
            if found is not None and port is not None and healthy(port):
                replica.proc, replica.port, replica.alive = Adopted(found.pid), port, True
                kept.append(f"{index} (pid {found.pid})")
        except (OSError, ValueError, KeyError, ProcessLookupError):
            pass  # no ready file, or it died meanwhile: restarted by its supervisor
        replicas.append(replica)
    if not kept:
        return False
    for replica in replicas:
        if not replica.alive:
            table.kill(replica_role(dep["id"], replica.index))
    deployer.note(
        dep["id"],
        f"the workspace daemon restarted: replicas kept serving: {', '.join(kept)}; "
        f"{len(replicas) - len(kept)} restarted",
    )
    deployer.serve(dep, replicas)
    return True
