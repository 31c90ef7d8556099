"""A throwaway CML project for integration tests: the repo's jobs and library plus a small config."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

#: Small but realistic: enough labelled rows per window for the policies, fast on 2 cores.
SMALL = {
    "scenario": {"rows_per_cycle": 250, "training_rows": 1500, "concurrency": 4},
    "thresholds": {
        "policies": [
            {"kind": "min_labelled", "min": 60},
            {"kind": "absolute", "metric": "accuracy", "min": 0.8},
            {"kind": "wilson", "min": 0.75, "confidence": 0.95},
        ]
    },
    "retraining": {"min_rows": 100},
    "deployment": {"poll_interval": "200ms", "build_timeout": "120s", "deploy_timeout": "120s"},
    "platform": {"retry": {"attempts": 3, "initial": "50ms", "maximum": "200ms", "jitter": "10ms"}},
    # MLflow's server starts in tens of seconds: only the tests of the lifecycle (tests/lifecycle) log runs
    "lifecycle": {"experiments": "off"},
}
#: A new user's first config: the model and the policies, nothing copied from an example (no ``jobs:``).
MINIMAL = """
model:
  name: bike-demand
  task: regression
  features: [temp, {name: season, kind: categorical}]
  label: rides
thresholds:
  policies:
    - {kind: min_labelled, min: 100}
    - {kind: absolute, metric: mae, max: 40}
"""
#: What an example's own config changes in tests: quick builds, deployments and retries.
FAST = {key: SMALL[key] for key in ("deployment", "platform", "lifecycle")}


class Replace(dict):
    """An override that replaces the section it names instead of merging into it (another kind of source)."""


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Replace):
            out[key] = dict(value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def make_project(root: Path, overrides: dict[str, Any] | None = None, example: str | None = None) -> Path:
    """Copy jobs/, apps/, monitoring/ and config/ into ``root``; write config/pipeline.yaml with overrides.

    With ``example`` (``churn``): copy ``examples/<example>/`` too and start from its own
    ``pipeline.yaml`` (``churn:production.yaml``: from that file), changing only what makes builds
    and retries quick (``FAST``).

    Returns:
        The config path.
    """
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    example, _, config_name = (example or "").partition(":")
    for name in ("jobs", "apps", "monitoring", "config", *([f"examples/{example}"] if example else [])):
        shutil.copytree(REPO / name, root / name, ignore=ignore, dirs_exist_ok=True)
    if example:
        config_file = REPO / "examples" / example / (config_name or "pipeline.yaml")
        data = merge(yaml.safe_load(config_file.read_text()), FAST)
    else:
        data = merge(yaml.safe_load((REPO / "config/pipeline.yaml").read_text()), SMALL)
    data = merge(data, overrides or {})
    path = root / "config/pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
