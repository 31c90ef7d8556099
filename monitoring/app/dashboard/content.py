"""The dashboard's content, as both the pages and the JSON API give it: status of each model, windows, decisions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from monitoring.app.dashboard.timerange import TimeRange
from monitoring.app.dashboard.views import MetricInfo, WindowPoint, metric_info, window_points
from monitoring.config.pipeline import PipelineConfig
from monitoring.core.logs import REDACTOR
from monitoring.domain.decisions.decision import Action, Decision
from monitoring.state import history
from monitoring.state.job_runs import JobRunRow, latest_job_runs
from monitoring.state.store import DEPLOYED, DeploymentRow, StateStore

#: Windows read back for "status now" (the latest one with a value is shown).
STATUS_WINDOWS = 48
#: Decisions a page lists at once (the JSON API pages with limit and offset).
DECISIONS_PER_PAGE = 100
#: Health of a model, worst first.
FAILING, ATTENTION, OK, NO_DATA = "failing", "attention", "ok", "no data"


def _text(value: str | None) -> str | None:
    """Stored free text as shown: secrets a job may have let through are masked."""
    return None if value is None else REDACTOR(value)


def decision_dict(decision: Decision, consumed_ms: int | None = None, finished_ms: int | None = None) -> dict[str, Any]:
    """A decision as the API gives it: every stored field, claim and finish times, free text redacted."""
    data = decision.to_dict()
    data.update(reason=_text(decision.reason), outcome_detail=_text(decision.outcome_detail))
    for result in data["results"]:
        result["reason"] = _text(result.get("reason"))
    data.update(consumed_ms=consumed_ms, finished_ms=finished_ms)
    return data


def job_run_dict(run: JobRunRow) -> dict[str, Any]:
    return {
        "job": run.job,
        "run_id": run.run_id,
        "status": run.status,
        "exit_code": run.exit_code,
        "summary": _text(run.summary),
        "action": _text(run.action),
        "fields": {k: _text(v) if isinstance(v, str) else v for k, v in run.fields.items()},
        "finished_ms": run.finished_ms,
    }


def deployment_dict(row: DeploymentRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "deployment_crn": row.deployment_crn,
        "version": row.version,
        "deployed_ms": row.deployed_ms,
        "reason": _text(row.reason),
    }


def what_to_do(decision: Decision | None, runs: list[JobRunRow]) -> list[str]:
    """What a person should do now: failed jobs' actions first, then what the latest decision asks."""
    todo = [f"{r.job} failed (exit {r.exit_code}): {_text(r.action)}" for r in runs if r.exit_code != 0]
    if decision is None:
        return todo or ["nothing to judge yet: run the job chain (or wait for its schedule)"]
    if decision.action is Action.REDEPLOY:
        if decision.outcome == DEPLOYED:
            todo.append(f"nothing: redeployed ({_text(decision.outcome_detail)})")
        elif decision.outcome:
            todo.append(f"redeploy {decision.outcome}: {_text(decision.outcome_detail)}; read the redeploy job's log")
        elif decision.consumed_by:
            todo.append(f"wait: the redeploy is in progress (run {decision.consumed_by})")
        else:
            todo.append(f"wait: redeploy decided ({decision.id}); the redeploy job acts on it at its next run")
    else:
        todo.append(_text(decision.reason) or "")
    return todo


def health(decision: Decision | None, runs: list[JobRunRow], window: WindowPoint | None) -> str:
    if any(r.exit_code != 0 for r in runs):
        return FAILING
    if decision is None and window is None:
        return NO_DATA
    if decision is not None and decision.action in (Action.REDEPLOY, Action.SUPPRESSED, Action.WARN, Action.PENDING):
        return OK if decision.outcome == DEPLOYED else ATTENTION
    return OK


@dataclass
class Content:
    """Reads one project's state store for the dashboard.

    Args:
        store: the state store, opened read-only.
        cfg: the pipeline config (the model, its metric and its policies).
    """

    store: StateStore
    cfg: PipelineConfig

    def models(self) -> list[str]:
        """The configured model first, then any other the store holds."""
        names = [self.cfg.model.name, *history.models(self.store)]
        return list(dict.fromkeys(names))

    def versions(self, model: str) -> dict[str, str | None]:
        return {d.deployment_crn: d.version for d in self.store.deployments(model)}

    def metric(self, decision: Decision | None) -> MetricInfo:
        return metric_info(self.cfg, decision.results if decision else ())

    def status(self, model: str) -> dict[str, Any]:
        """Where ``model`` stands now (the shape ``docs/dashboard.md`` documents)."""
        decision = self.store.latest_decision(model)
        runs = latest_job_runs(self.store, model)
        info = self.metric(decision)
        latest = None
        span = history.window_span(self.store, model)
        if span is not None:
            since = span[1] - STATUS_WINDOWS * self.cfg.windows.length_ms
            rows = history.window_rows(self.store, model, info.name, since_ms=since)
            points = window_points(rows, info.name, info.confidence, self.versions(model))
            latest = next((p for p in reversed(points) if p.value is not None), points[-1] if points else None)
        return {
            "model": model,
            "health": health(decision, runs, latest),
            "deployment": deployment_dict(self.store.current_deployment(model)),
            "jobs": [job_run_dict(r) for r in runs],
            "latest_decision": None if decision is None else decision_dict(decision),
            "latest_window": None if latest is None else latest.to_dict(),
            "metric": info.to_dict(),
            "what_to_do": what_to_do(decision, runs),
        }

    def windows(self, model: str, rng: TimeRange) -> tuple[MetricInfo, list[WindowPoint]]:
        """The metric and the windows that start in the range, oldest first."""
        info = self.metric(self.store.latest_decision(model))
        rows = history.window_rows(self.store, model, info.name, rng.since_ms, rng.until_ms)
        return info, window_points(rows, info.name, info.confidence, self.versions(model))

    def decisions(
        self, model: str, rng: TimeRange, limit: int = DECISIONS_PER_PAGE, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        """The decisions made in the range, newest first, and how many there are."""
        rows, total = history.decisions_between(self.store, model, rng.since_ms, rng.until_ms, limit, offset)
        return [decision_dict(r.decision, r.consumed_ms, r.finished_ms) for r in rows], total

    def deployments(self, model: str, rng: TimeRange) -> list[tuple[int, int, str, str]]:
        """Who served when, clipped to the range: ``(from_ms, to_ms, version, reason)``."""
        rows = self.store.deployments(model)
        out = []
        for i, d in enumerate(rows):
            end = rows[i + 1].deployed_ms if i + 1 < len(rows) else rng.until_ms
            if end > rng.since_ms and d.deployed_ms < rng.until_ms:
                out.append(
                    (max(d.deployed_ms, rng.since_ms), min(end, rng.until_ms), d.version or "?", _text(d.reason) or "")
                )
        return out

    def redeploys(self, model: str, rng: TimeRange) -> list[int]:
        """When a later deployment replaced an earlier one (redeploys and rollbacks), inside the range."""
        rows = self.store.deployments(model)
        return [d.deployed_ms for d in rows[1:] if rng.since_ms <= d.deployed_ms < rng.until_ms]
