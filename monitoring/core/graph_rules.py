"""Structural rules of a CML job graph, checked before any platform call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class JobLike(Protocol):
    name: str
    parent: str | None
    schedule: str | None


def graph_problems(jobs: Sequence[JobLike]) -> list[str]:
    """Every structural problem of a job graph, each naming the job.

    CML rules: names are unique, a parent must exist, a dependent job cannot have a schedule
    (only the head of a chain can), and dependencies must not form a cycle.
    """
    problems: list[str] = []
    names = [j.name for j in jobs]
    seen: set[str] = set()
    for name in names:
        if name in seen:
            problems.append(f"job {name!r}: duplicate name")
        seen.add(name)
    by_name = {j.name: j for j in jobs}
    for job in jobs:
        if job.parent is not None and job.parent not in by_name:
            problems.append(f"job {job.name!r}: parent {job.parent!r} is not in the graph")
        if job.parent is not None and job.schedule:
            problems.append(f"job {job.name!r}: a dependent job cannot have a schedule (only the head of a chain can)")
    for job in jobs:
        path = [job.name]
        current = job
        while current.parent is not None and current.parent in by_name:
            if current.parent in path:
                cycle = " -> ".join(path[path.index(current.parent) :] + [current.parent])
                problem = f"dependency cycle: {cycle}"
                if problem not in problems and job.name == min(path[path.index(current.parent) :]):
                    problems.append(problem)
                break
            path.append(current.parent)
            current = by_name[current.parent]
    return problems
