"""``lifecycle``: when trainings are logged, what a registry build needs, and the config digest."""

from __future__ import annotations

import pytest
import yaml

from monitoring.config.pipeline import parse_config
from monitoring.core.errors import ConfigError
from monitoring.lifecycle.switch import config_digest, experiments_on
from tests.project import MINIMAL


def _cfg(**lifecycle):
    return parse_config({**yaml.safe_load(MINIMAL), "lifecycle": lifecycle}, "pipeline.yaml")


def test_auto_logs_exactly_when_a_tracking_uri_is_set():
    assert experiments_on(_cfg(), {"MLFLOW_TRACKING_URI": "http://x/mlflow"})
    assert not experiments_on(_cfg(), {})
    assert not experiments_on(_cfg(experiments="off"), {"MLFLOW_TRACKING_URI": "http://x/mlflow"})


@pytest.mark.parametrize("lifecycle", [{"experiments": "on"}, {"builds": "registry"}])
def test_on_or_registry_builds_without_a_tracking_uri_is_a_config_error_not_a_stray_local_store(lifecycle):
    with pytest.raises(ConfigError, match=r"MLFLOW_TRACKING_URI is not set"):
        experiments_on(_cfg(**lifecycle), {})


@pytest.mark.parametrize(
    "lifecycle", [{"builds": "registry", "experiments": "off"}, {"builds": "registry", "tracking_errors": "continue"}]
)
def test_registry_builds_need_runs_that_cannot_be_skipped(lifecycle):
    with pytest.raises(ConfigError, match=r"pipeline.yaml: lifecycle: builds: registry registers each model"):
        _cfg(**lifecycle)


def test_the_digest_follows_the_config():
    assert config_digest(_cfg()) == config_digest(_cfg())
    assert config_digest(_cfg()) != config_digest(_cfg(tracking_errors="continue"))
