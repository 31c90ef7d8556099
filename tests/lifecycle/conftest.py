"""Fixtures: the fault rig's template (v1 serves, a redeploy decision waits) with experiments turned on per test."""

from __future__ import annotations

import mlflow
import pytest

from tests.faults.conftest import template  # noqa: F401 - the same template (v1 serves, a redeploy decision waits)
from tests.faults.rig import rig_from

#: Marks of the tests that reach an MLflow server: slow (its start), and quiet about MLflow's own warnings.
MLFLOW_MARKS = [
    pytest.mark.slow,
    pytest.mark.timeout(900),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # MLflow's own SQLAlchemy and pydantic use
    pytest.mark.filterwarnings("ignore::FutureWarning"),
    pytest.mark.filterwarnings("ignore::UserWarning"),
]


@pytest.fixture
def rig(template, tmp_path, monkeypatch):  # noqa: F811 - the imported fixture
    """A copy of the template on a started workspace; ``lifecycle.experiments: auto`` (its MLflow server)."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")  # a refused call fails at once, no backoff
    with rig_from(template, tmp_path / "project") as made:
        made.reconfigure(lifecycle={"experiments": "auto"})
        # a long-running workspace's server is up; its first start (a store migration) can take longer than
        # the MLflow client's 120 s request timeout on a loaded machine
        made.ws.tracking.ensure()
        yield made
    mlflow.set_tracking_uri(None)


def client() -> mlflow.MlflowClient:
    """A client of the rig's tracking server (``MLFLOW_TRACKING_URI`` and its token are in the environment)."""
    return mlflow.MlflowClient()
