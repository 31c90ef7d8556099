"""Decisions: from a deployment's evaluated windows to one action with a sentence on-call can act on."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from itertools import takewhile
from typing import Any

from cmlbase.clock import iso_ms
from monitoring.core.errors import ConfigError, DataError
from monitoring.domain.decisions.policy_results import (
    FAIL,
    INSUFFICIENT,
    WARN,
    PolicyResult,
    fmt_value,
    is_breach,
    is_evaluable,
)
from monitoring.domain.decisions.policy_warnings import PolicyWarning, ranked_warnings, warnings_text
from monitoring.domain.decisions.thresholds import evaluate_window
from monitoring.domain.windows.results import WindowMetrics

DAY_MS = 24 * 3600 * 1000
FORMATS = ("table", "json")


def _json_safe(value: Any) -> Any:
    """Plain JSON values: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class Action(str, Enum):
    """What a decision asks for. Its value is what the state store keeps and the VERDICT line shows."""

    NONE = "none"
    INSUFFICIENT_DATA = "insufficient_data"
    WARN = "warn"
    REDEPLOY = "redeploy"
    SUPPRESSED = "suppressed"
    PENDING = "pending"
    """A breach, but fewer than ``thresholds.consecutive`` breaching windows in a row yet: no redeploy."""
    ROLLBACK = "rollback"
    """A person's ``cml-monitor rollback --to VERSION``: an earlier version deployed again, with their reason."""

    def __str__(self) -> str:
        return self.value


@dataclass
class Decision:
    """What evaluate_thresholds decided for one model, and what redeploy later did with it."""

    id: str | None
    created_ms: int
    model: str
    deployment_crn: str
    window_start_ms: int | None
    window_end_ms: int | None
    values: dict[str, float]
    results: list[PolicyResult]
    action: Action
    reason: str
    consumed_by: str | None = None
    outcome: str | None = None
    outcome_detail: str | None = None
    metric: str = "accuracy"
    """The headline metric (``metric_registry.headline_metric``): what the reason and the table show."""
    breaches: int = 0
    """Breaching evaluable windows in a row, ending with the decisive one (0: it does not breach)."""
    consecutive: int = 1
    """``thresholds.consecutive`` when decided: breaching windows in a row a redeploy needs."""
    warnings: list[PolicyWarning] = field(default_factory=list)
    """Failed warn-only checks of the decision's window, most severe first (``policy_warnings``)."""

    def __post_init__(self) -> None:
        try:
            self.action = Action(self.action)
        except ValueError:
            raise DataError(
                f"decision {self.id}: unknown action {self.action!r}; expected one of {', '.join(a.value for a in Action)}"
            ) from None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (``json.dumps(..., allow_nan=False)`` accepts it)."""
        data: dict[str, Any] = {
            k: getattr(self, k) for k in self.__dataclass_fields__ if k not in ("results", "warnings")
        }
        data["action"] = self.action.value
        data["results"] = [r.to_dict() for r in self.results]
        data["warnings"] = [w.to_dict() for w in self.warnings]
        safe: dict[str, Any] = _json_safe(data)
        return safe

    def streak(self) -> str | None:
        """``"1 of 2"``: breaching windows in a row of those a redeploy needs; None without a breach."""
        return f"{self.breaches} of {self.consecutive}" if self.breaches else None

    def warnings_text(self) -> str | None:
        """The most severe warnings and how many more (``policy_warnings.warnings_text``); None without any."""
        return warnings_text(self.warnings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Inverse of ``to_dict``; unknown keys are ignored, missing optional ones default."""
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        known["results"] = [
            r if isinstance(r, PolicyResult) else PolicyResult.from_dict(r) for r in data.get("results") or []
        ]
        known["warnings"] = [
            w if isinstance(w, PolicyWarning) else PolicyWarning.from_dict(w) for w in data.get("warnings") or []
        ]
        known.setdefault("values", {})
        for key in ("id", "window_start_ms", "window_end_ms"):
            known.setdefault(key, None)
        return cls(**known)


def _span(w: WindowMetrics) -> str:
    return f"{iso_ms(w.start_ms)}..{iso_ms(w.end_ms)}"


def _values(w: WindowMetrics) -> dict[str, float]:
    """The window's defined metrics, with its counts (a regressor's ``zero_targets``: rows MAPE leaves out)."""
    counts = {"labelled": w.labelled, "predictions": w.predictions}
    if w.zero_targets is not None:
        counts["zero_targets"] = w.zero_targets
    return {**w.scores(), **counts}


def _blockers(now_ms: int, cooldown_ms: int, max_per_day: int, times: Iterable[int]) -> list[str]:
    """Why a redeploy must not happen now, each with what to do (empty when it may)."""
    past = sorted(int(t) for t in times if int(t) <= now_ms)
    out = []
    if past and now_ms - past[-1] < cooldown_ms:
        out.append(
            f"the last redeploy was at {iso_ms(past[-1])}, inside the cooldown of "
            f"{cooldown_ms / 3_600_000:g}h: give it time; if the breach persists, a run after "
            f"{iso_ms(past[-1] + cooldown_ms)} redeploys"
        )
    recent = [t for t in past if now_ms - DAY_MS < t]
    if max_per_day <= 0:
        out.append(
            "automatic redeploys are disabled (max_redeploys_per_day is 0): retrain and deploy by hand "
            "if the model must be replaced"
        )
    elif len(recent) >= max_per_day:
        until = recent[len(recent) - max_per_day] + DAY_MS
        out.append(
            f"{len(recent)} redeploys in the last 24h reached max_redeploys_per_day={max_per_day} "
            f"(next allowed after {iso_ms(until)}): retraining is not fixing it, check the input data "
            "and the labels before deploying by hand"
        )
    return out


def decide(
    windows: Sequence[Any],
    policies: Sequence[Any],
    consecutive: int,
    cooldown_ms: int,
    max_per_day: int,
    redeploy_times_ms: Iterable[int],
    now_ms: int,
    model: str,
    deployment_crn: str,
    baseline: Mapping[str, float] | None = None,
    metric: str = "accuracy",
) -> Decision:
    """Decide what to do about the live deployment.

    The decisive window is the latest evaluable one (``policy_results.is_evaluable``). A breach is
    any failing policy whose action is "act". Redeploy only when the last ``consecutive``
    evaluable windows all breach, outside the cooldown after the last redeploy (exactly at
    the boundary is allowed) and under the cap of redeploys in (now - 24h, now]; otherwise
    "suppressed". Fewer breaching windows in a row than ``consecutive`` give "pending". A
    failing drift "warn" policy on an otherwise healthy window gives "warn"; whatever the
    action, the decision's window's failed warn-only checks are in ``warnings`` (ranked) and
    named in the reason. Windows are evaluated newest first and only as far back as the
    decision needs.

    Args:
        windows: the live deployment's windows, ordered by start (WindowMetrics or compatible).
        policies: ``ThresholdConfig.policies``.
        consecutive: breaching evaluable windows needed in a row.
        cooldown_ms: minimum time between redeploys.
        max_per_day: cap on redeploys in any rolling 24 hours.
        redeploy_times_ms: when earlier redeploys of this model happened; must reach back at least
            max(24h, cooldown) (``StateStore.redeploys_since``).
        now_ms: the decision time.
        model: the model name.
        deployment_crn: the live deployment.
        baseline: training holdout metrics for relative_drop and relative_rise policies.
        metric: the headline metric, named in the reason of a healthy window.
    Returns:
        a Decision (id None until stored).
    """
    rows = sorted(map(WindowMetrics.from_obj, windows), key=lambda w: w.start_ms)
    latest, usable = None, []  # usable: evaluable windows, newest first, only as many as the decision needs
    for w in reversed(rows):
        results = evaluate_window(w, policies, baseline, rows)
        if latest is not None:  # estimates need no label: theirs are the newest window's
            results = [n if r.kind == "estimated" else r for r, n in zip(results, latest[1])]
        latest = latest or (w, results)
        if is_evaluable(results):
            usable.append((w, results))
            if not is_breach(results) or len(usable) >= consecutive:
                break

    def make(
        action: Action, reason: str, w: WindowMetrics | None, results: list[PolicyResult], breaches: int = 0
    ) -> Decision:
        warned = ranked_warnings(w, policies, results) if w is not None else []
        if warned and action is not Action.WARN:
            reason = f"{reason} Warn-only checks failed, worst first: {warnings_text(warned)}."
        return Decision(
            None,
            now_ms,
            model,
            deployment_crn,
            w.start_ms if w else None,
            w.end_ms if w else None,
            _values(w) if w else {},
            results,
            action,
            reason,
            metric=metric,
            breaches=breaches,
            consecutive=consecutive,
            warnings=warned,
        )

    if latest is None:
        return make(
            Action.INSUFFICIENT_DATA,
            f"no windows computed yet for deployment {deployment_crn}; nothing to judge "
            "(check that compute_accuracy ran and traffic is arriving).",
            None,
            [],
        )
    if not usable:
        w, results = latest
        short = [r for r in results if r.status == INSUFFICIENT]
        why = (
            next((r.reason for r in short if r.kind == "min_labelled"), None)
            or "; ".join(dict.fromkeys(r.reason for r in short))
            or "no policy could be evaluated"
        )
        return make(
            Action.INSUFFICIENT_DATA,
            f"no window has enough labelled data yet (latest {_span(w)}: {why}); no action: wait for labels to arrive.",
            w,
            results,
        )
    w, results = usable[0]
    where = f"window {_span(w)}" + ("" if w is latest[0] else " (latest evaluable)")
    if is_breach(results):
        failed = "; ".join(f"{r.policy}: {r.reason}" for r in results if r.status == FAIL and r.action != WARN)
        streak = sum(1 for _ in takewhile(lambda item: is_breach(item[1]), usable))
        if streak < consecutive:
            return make(
                Action.PENDING,
                f"{where} breached ({failed}): breach {streak} of {consecutive} consecutive breaching windows "
                "needed before a redeploy; no redeploy yet, the next windows decide.",
                w,
                results,
                streak,
            )
        blockers = _blockers(now_ms, cooldown_ms, max_per_day, redeploy_times_ms)
        runs = f"{consecutive} consecutive windows" if consecutive > 1 else "1 window"
        if blockers:
            return make(
                Action.SUPPRESSED,
                f"{where} breached ({failed}) in {runs}, but the redeploy is suppressed: {'; '.join(blockers)}.",
                w,
                results,
                streak,
            )
        return make(
            Action.REDEPLOY,
            f"{where} breached ({failed}) in {runs}; redeploying: retrain, gate, build and deploy.",
            w,
            results,
            streak,
        )
    headline = w.value(metric)
    acc = f"{metric} {fmt_value(headline)}" if headline is not None else "metrics"
    acc += f" over {w.labelled} labels{w.rows_note(metric)}"
    warned = ranked_warnings(w, policies, results)
    if warned:
        return make(
            Action.WARN,
            f"{where}: {acc} passes, but warn-only checks failed (input drift, or performance estimated "
            f"before labels; worst first: {warnings_text(warned)}); no redeploy (their action is warn): check the "
            "upstream data sources.",
            w,
            results,
        )
    return make(Action.NONE, f"{where}: {acc} passes all policies; healthy, no action.", w, results)


def format_decisions(decisions: Sequence[Decision], fmt: str = "table") -> str:
    """Render decisions for ``cml-monitor decisions``.

    Args:
        decisions: newest first, as ``StateStore.list_decisions`` returns them.
        fmt: "table" (aligned columns, full reason last) or "json" (a list of ``to_dict()``).
    Returns:
        the text, without a trailing newline.
    Raises:
        ConfigError: an unknown format.
    """
    if fmt == "json":
        return json.dumps([d.to_dict() for d in decisions], indent=2, allow_nan=False)
    if fmt != "table":
        raise ConfigError(f"--format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    head = ("ID", "CREATED", "MODEL", "ACTION", "METRIC", "LABELLED", "OUTCOME", "REASON")
    rows = [head]
    for d in decisions:
        value = d.values.get(d.metric)
        outcome = d.outcome or (f"claimed by {d.consumed_by}" if d.consumed_by else "-")
        rows.append(
            (
                d.id or "-",
                iso_ms(d.created_ms),
                d.model,
                d.action.value,
                "-" if value is None else f"{d.metric}={fmt_value(value)}",
                str(d.values.get("labelled", "-")),
                outcome,
                d.reason,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(head) - 1)]
    lines = ["  ".join(c.ljust(wd) for c, wd in zip(r[:-1], widths)) + "  " + r[-1] for r in rows]
    if not decisions:
        lines.append("(no decisions recorded)")
    return "\n".join(line.rstrip() for line in lines)
