"""Builders for the report tests: a config with a hostile model name and a filled state store."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser
from pathlib import Path

import yaml

from monitoring.config.pipeline import PipelineConfig, parse_config
from monitoring.domain.decisions.decision import Decision
from monitoring.domain.decisions.policy_results import PolicyResult
from monitoring.domain.windows.results import WindowMetrics
from monitoring.state.store import StateStore

ROOT = Path(__file__).resolve().parents[2]
HOUR = 3_600_000
T0 = 1_763_884_800_000  # 2025-11-23T08:00:00Z
NOW = T0 + 14 * HOUR
HOSTILE = '<script>alert("pwn")</script> & <img src=x onerror=1> $\\alpha$'
FEATURES = ("iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CRN_V1, CRN_V2, CRN_V1B = (f"crn:cdp:ml:us-west-1:t:w:ws/model/deployment-{i}" for i in (1, 2, 3))
REDEPLOY_ID = "d-20251123130500-abc123"
#: (deployment, version, deployed at, reason) in deployment order: bootstrap, a redeploy, a rollback.
DEPLOYMENTS = (
    (CRN_V1, "v1", T0, "bootstrap"),
    (CRN_V2, "v2", T0 + 6 * HOUR, REDEPLOY_ID),
    (CRN_V1B, "v1", T0 + 10 * HOUR, "rollback"),
)
#: accuracy per hourly window 0..12 (None: no labels yet in the last one).
ACCURACY = (0.91, 0.9, 0.88, 0.84, 0.78, 0.72, 0.9, 0.86, 0.8, 0.7, 0.89, 0.9, None)


def config(name: str = HOSTILE) -> PipelineConfig:
    """The project's pipeline.yaml with another model name and a drift policy added."""
    data = yaml.safe_load((ROOT / "config" / "pipeline.yaml").read_text(encoding="utf-8"))
    data["model"]["name"] = name
    data["thresholds"]["policies"].append({"kind": "drift", "max_psi": 0.25, "action": "warn"})
    return parse_config(data, "test config")


def crn_at(i: int) -> str:
    return CRN_V1 if i < 6 else CRN_V2 if i < 10 else CRN_V1B


def window(i: int) -> WindowMetrics:
    """The i-th hourly window: drift grows on two features, the last window has no labels."""
    acc = ACCURACY[i]
    labelled = 0 if acc is None else 150 + 10 * i
    drift = {f: {"psi": round(0.02 + (0.05 * i if k < 2 else 0.01 * k), 3), "ks": 0.1} for k, f in enumerate(FEATURES)}
    return WindowMetrics(
        crn_at(i),
        T0 + i * HOUR,
        T0 + (i + 1) * HOUR,
        300,
        labelled,
        acc,
        None if acc is None else acc - 0.03,
        None if acc is None else acc - 0.05,
        None if acc is None else acc - 0.04,
        {"tp": 1, "fp": 1, "tn": 1, "fn": 1},
        drift,
    )


def decision(i: int, action: str, reason: str, **extra) -> Decision:
    w = window(i)
    return Decision(
        extra.pop("id", None),
        w.end_ms + 5 * 60_000,
        extra.pop("model"),
        w.deployment_crn,
        w.start_ms,
        w.end_ms,
        {"accuracy": w.accuracy, "labelled": w.labelled},
        [
            PolicyResult(
                "absolute accuracy >= 0.8",
                "fail" if action == "redeploy" else "pass",
                w.accuracy,
                None,
                0.8,
                "accuracy vs 0.8",
                "absolute",
            )
        ],
        action,
        reason,
        **extra,
    )


def fill(store: StateStore, model: str) -> None:
    """Deployments, 13 windows and 3 decisions, all through the store's own API."""
    for crn, version, ms, reason in DEPLOYMENTS:
        store.record_deployment(model, crn, "crn:model-1", f"build-{version}", version, ms, reason)
    store.upsert_windows(window(i) for i in range(len(ACCURACY)))
    store.add_decision(decision(2, "none", "healthy, no action.", model=model))
    store.add_decision(
        decision(
            5,
            "redeploy",
            "accuracy 0.72 < 0.8; redeploying <b>now</b>",
            model=model,
            id=REDEPLOY_ID,
            consumed_by="run-7",
            outcome="deployed",
            outcome_detail="v2 serves",
        )
    )
    store.add_decision(decision(11, "none", "window passes all policies; healthy, no action.", model=model))


def embedded_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


class TagBalance(HTMLParser):
    """Checks that every non-void element is closed in order; ``problems`` lists what is not."""

    VOID = {"meta", "img", "br", "link", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.problems.append(f"unexpected </{tag}>")


def tag_problems(page: str) -> list[str]:
    parser = TagBalance()
    parser.feed(page)
    parser.close()
    return parser.problems + [f"unclosed <{t}>" for t in parser.stack]
