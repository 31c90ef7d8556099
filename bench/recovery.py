"""``python -m bench.recovery [--example housing] [--strategy sliding ...] [--cycles 9]``: measured recovery.

Each example runs its own config, data and trainer on a local workspace, in-process and cycle by
cycle (as ``tests/integration/test_examples_loop.py`` does), once per retraining strategy
(``retraining.strategy.kind``; everything else as the example's config says, seeds included). It
prints, per example and strategy, the headline metric of the windows before the first breach
(their mean), of the breaching window the redeploy acted on, and of the windows the new version
served (their mean, and each), with the redeploy decisions and outcomes. Simulated time and the
seeds are fixed, so a run reproduces the figures up to the few boundary rows a busy machine moves
from one window to the next.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = {"telco": None, "churn": "churn", "housing": "housing", "credit": "credit"}
STRATEGIES = ("sliding", "expanding", "recency_weighted")
#: Telco's default scenario drifts 4 hours in; 8 cycles show the breach and two windows after it.
CYCLES = {"telco": 8, "churn": 10, "housing": 9, "credit": 10}


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def run(example: str, strategy: str | None, cycles: int, parent: Path, half_life: str | None = None) -> dict[str, Any]:
    """One closed loop of ``example`` under ``strategy`` (None: the example's own); its figures."""
    from monitoring.config.metric_registry import headline_metric
    from monitoring.domain.windows.headline import policy_metric
    from tests.integration.support import running_pipeline

    chosen = {"kind": strategy} if strategy else {}
    chosen.update({"half_life": half_life} if half_life else {})
    overrides = {"retraining": {"strategy": chosen}} if chosen else {}
    root = Path(tempfile.mkdtemp(dir=parent)) / "project"
    with pytest.MonkeyPatch.context() as patch, running_pipeline(root, patch, overrides, True, EXAMPLES[example]) as p:
        metric = headline_metric(p.cfg.model.task, policy_metric(p.cfg.thresholds.policies))
        log = []
        for cycle in range(1, cycles + 1):
            out = p.cycle(cycle)
            log.append(
                {
                    "cycle": cycle,
                    "traffic": out["traffic"].status,
                    "decision": out["evaluate"].fields["decision_action"],
                    "redeploy": out["redeploy"].status,
                    "gate": {k: out["redeploy"].fields.get(k) for k in ("gain", "gain_low", "gain_high")},
                }
            )
            if out["traffic"].status == "replay_exhausted":
                break
        store, name = p.ctx.store, p.cfg.model.name
        versions = {d.deployment_crn: d.version for d in store.deployments(name)}
        windows = [w for w in store.windows() if w.labelled and w.value(metric) is not None]
        first = {}
        for w in windows:
            first.setdefault(versions.get(w.deployment_crn), w)
        acted = [d for d in store.list_decisions(name, limit=100) if d.action.value == "redeploy"]
        breach_at = min((d.window_start_ms for d in acted), default=None)
        before = [w.value(metric) for w in windows if breach_at is None or w.end_ms <= breach_at]
        breach = [
            w.value(metric) for w in windows if w.start_ms == breach_at and versions.get(w.deployment_crn) == "v1"
        ]
        after = [(versions.get(w.deployment_crn), round(w.value(metric), 4)) for w in windows]
        after = [(v, value) for v, value in after if v not in (None, "v1")]
        return {
            "example": example,
            "strategy": p.cfg.retraining.strategy.kind
            + (
                f" {p.cfg.retraining.strategy.half_life}"
                if p.cfg.retraining.strategy.kind == "recency_weighted"
                else ""
            ),
            "metric": metric,
            "before": _mean(before[1:] or before),  # the first window holds the smoke call's cycle
            "at_breach": _mean(breach),
            "after": _mean([v for _, v in after]),
            "after_windows": after,
            "last_decision": log[-1]["decision"] if log else None,
            "redeploy_decisions": sum(1 for r in log if r["decision"] == "redeploy"),
            "deployed": sum(1 for r in log if r["redeploy"] == "deployed"),
            "cycles": log,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", action="append", choices=sorted(EXAMPLES))
    parser.add_argument("--strategy", action="append", choices=[*STRATEGIES, "default"])
    parser.add_argument("--cycles", type=int)
    parser.add_argument("--half-life", help="retraining.strategy.half_life (e.g. 3h)")
    parser.add_argument("--json", type=Path, help="also write every run's figures here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for example in args.example or list(EXAMPLES):
            for strategy in args.strategy or ["default"]:
                chosen = None if strategy == "default" else strategy
                result = run(example, chosen, args.cycles or CYCLES[example], Path(tmp), args.half_life)
                results.append(result)
                print(
                    f"{example:<8} {result['strategy']:<17} {result['metric']:<9} before {result['before']}  "
                    f"at breach {result['at_breach']}  after {result['after']}  "
                    f"redeploy decisions {result['redeploy_decisions']}, deployed {result['deployed']}, "
                    f"last decision {result['last_decision']}  "
                    f"windows after: {result['after_windows']}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
