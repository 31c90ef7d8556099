"""Structural rules of a CML job graph, checked before any platform call."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import PurePosixPath
from typing import Any, Protocol

#: The job scripts of the pipeline. Feeds put predictions or labels into the metrics store and
#: head a chain: ``simulate_traffic`` (rehearsal) or ``ground_truth`` (production).
SIMULATE_TRAFFIC_SCRIPT = "jobs/simulate_traffic.py"
GROUND_TRUTH_SCRIPT = "jobs/ground_truth.py"
COMPUTE_ACCURACY_SCRIPT = "jobs/compute_accuracy.py"
EVALUATE_SCRIPT = "jobs/evaluate_thresholds.py"
REDEPLOY_SCRIPT = "jobs/redeploy.py"
#: Where each script stands in a chain: a job never runs after a job of a later stage.
STAGES = {
    SIMULATE_TRAFFIC_SCRIPT: 0,
    GROUND_TRUTH_SCRIPT: 0,
    COMPUTE_ACCURACY_SCRIPT: 1,
    EVALUATE_SCRIPT: 2,
    REDEPLOY_SCRIPT: 3,
}
KNOWN_SCRIPTS = tuple(STAGES)
CHAIN_ORDER = "a feed (simulate_traffic or ground_truth) -> compute_accuracy -> evaluate_thresholds -> redeploy"


#: The default graph (``jobs.graph`` unset): job names are this prefix and the script's name.
DEFAULT_JOB_PREFIX = "cml-monitor"
#: The default head job's schedule: hourly, on the hour (in ``jobs.timezone``).
DEFAULT_SCHEDULE = "0 * * * *"
#: The default redeploy job's memory (GB): it retrains, so it gets more than the others' 2.
DEFAULT_REDEPLOY_MEMORY = 4


def default_graph(head_script: str, trigger: str = "chain") -> list[dict[str, Any]]:
    """The standard four-job chain, as ``jobs.graph`` YAML would give it.

    ``head_script`` (``simulate_traffic`` in rehearsal, ``ground_truth`` in production) is the
    scheduled head; then compute_accuracy, evaluate_thresholds and redeploy, each the dependent
    of the one before. With ``trigger: api`` the redeploy job has no parent (evaluate_thresholds
    starts it).
    """
    jobs: list[dict[str, Any]] = []
    for script in (head_script, COMPUTE_ACCURACY_SCRIPT, EVALUATE_SCRIPT, REDEPLOY_SCRIPT):
        job: dict[str, Any] = {"name": f"{DEFAULT_JOB_PREFIX} {PurePosixPath(script).stem}", "script": script}
        if not jobs:
            job["schedule"] = DEFAULT_SCHEDULE
        elif not (script == REDEPLOY_SCRIPT and trigger == "api"):
            job["parent"] = jobs[-1]["name"]
        if script == REDEPLOY_SCRIPT:
            job["memory"] = DEFAULT_REDEPLOY_MEMORY
        jobs.append(job)
    return jobs


class JobLike(Protocol):
    name: str
    script: str
    parent: str | None
    schedule: str | None


def graph_problems(jobs: Sequence[JobLike], *, standalone: Collection[str] = ()) -> list[str]:
    """Every structural problem of a job graph, each naming the job.

    CML rules: names are unique, a parent must exist, a dependent job cannot have a schedule
    (only the head of a chain can), and dependencies must not form a cycle. Pipeline rules: one
    head (the only job without a parent) with a schedule, every script a known job script used
    once, and no job after a job of a later stage.

    Args:
        standalone: scripts that may stand alone, with neither parent nor schedule (the redeploy
            job when ``jobs.trigger`` is ``api``: evaluate_thresholds starts it).
    """
    problems = _names_and_parents(jobs) + _scripts(jobs)
    cycles = _cycles(jobs)
    problems += cycles
    if not cycles:
        problems += _head(jobs, standalone)
    return problems


def _names_and_parents(jobs: Sequence[JobLike]) -> list[str]:
    problems: list[str] = []
    seen: set[str] = set()
    for job in jobs:
        if job.name in seen:
            problems.append(f"job {job.name!r}: duplicate name")
        seen.add(job.name)
    by_name = {j.name: j for j in jobs}
    for job in jobs:
        if job.parent is not None and job.parent not in by_name:
            problems.append(f"job {job.name!r}: parent {job.parent!r} is not in the graph")
        if job.parent is not None and job.schedule:
            problems.append(f"job {job.name!r}: a dependent job cannot have a schedule (only the head of a chain can)")
    return problems


def _scripts(jobs: Sequence[JobLike]) -> list[str]:
    problems: list[str] = []
    owner: dict[str, str] = {}
    for job in jobs:
        if job.script not in STAGES:
            problems.append(
                f"job {job.name!r}: script {job.script!r} is not a cml-monitor job (one of {', '.join(KNOWN_SCRIPTS)})"
            )
        elif job.script in owner:
            problems.append(
                f"job {job.name!r}: script {job.script!r} is already the script of job {owner[job.script]!r}"
            )
        else:
            owner[job.script] = job.name
    by_name = {j.name: j for j in jobs}
    for job in jobs:
        parent = by_name.get(job.parent) if job.parent is not None else None
        if parent is None or job.script not in STAGES or parent.script not in STAGES:
            continue
        if STAGES[parent.script] > STAGES[job.script]:
            problems.append(
                f"job {job.name!r} ({job.script}) cannot run after job {parent.name!r} ({parent.script}): "
                f"a chain runs {CHAIN_ORDER}"
            )
    return problems


def _head(jobs: Sequence[JobLike], standalone: Collection[str]) -> list[str]:
    heads = [j for j in jobs if j.parent is None and not (j.script in standalone and not j.schedule)]
    if not heads:
        return ["no head job: exactly one job needs no parent and a schedule"] if jobs else []
    if len(heads) > 1:
        named = ", ".join(repr(j.name) for j in heads)
        return [f"jobs {named} have no parent: a graph has one head (the scheduled job); give the others a parent"]
    if not heads[0].schedule:
        return [f"job {heads[0].name!r}: the head job (no parent) needs a schedule"]
    return []


def _cycles(jobs: Sequence[JobLike]) -> list[str]:
    problems: list[str] = []
    by_name = {j.name: j for j in jobs}
    for job in jobs:
        path = [job.name]
        current = job
        while current.parent is not None and current.parent in by_name:
            if current.parent in path:
                loop = path[path.index(current.parent) :]
                problem = f"dependency cycle: {' -> '.join(loop + [current.parent])}"
                if problem not in problems and job.name == min(loop):
                    problems.append(problem)
                break
            path.append(current.parent)
            current = by_name[current.parent]
    return problems
