"""Where a registered version's MLflow model lives on disk, and how a build serves it.

A version's ``source`` is what MLflow recorded: ``runs:/<run>/<path>`` (API v2 and the lab register
so), ``models:/m-<id>`` (``mlflow.register_model`` of MLflow 3), or ``mlflow-artifacts:/<path>``.
The workspace's server keeps every artifact under ``W/mlflow/artifacts``, so each resolves to a
directory holding an ``MLmodel`` file, which a build copies as its snapshot.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from localcml.core.errors import invalid
from localcml.experiments.tracking import TrackingServer

PROXY_SCHEME = "mlflow-artifacts:"
#: The file a build from a registered version serves (``predict``), written beside ``model/``.
SERVE_FILE = "registered_model.py"
SERVE_FUNCTION = "predict"
SERVE_SOURCE = '''"""Serves the MLflow model in ``model/`` (a build of registered model version {version_id}).

Written by the local CML workspace, as CML builds a serving image from a registered version.
"""

from localcml.models.mlflow_serving import serve

predict = serve("model")
'''
_RUNS = re.compile(r"^runs:/(?P<run>[0-9a-zA-Z]+)/(?P<path>.+)$")
_MODELS = re.compile(r"^models:/(?P<id>m-[0-9a-f]+)$")


class ModelSource:
    """Resolves MLflow model URIs of the workspace's server to local directories."""

    def __init__(self, tracking: TrackingServer):
        self.tracking = tracking

    def _local(self, uri: str) -> Path | None:
        if not uri.startswith(PROXY_SCHEME):
            return None
        rest = uri[len(PROXY_SCHEME) :].lstrip("/")
        root = self.tracking.artifacts_dir.resolve()
        path = (root / rest).resolve()
        return path if root in path.parents and (path / "MLmodel").is_file() else None

    def _logged_model(self, model_id: str) -> Path | None:
        info = self.tracking.call("GET", f"logged-models/{model_id}")["model"]["info"]
        return self._local(info.get("artifact_uri", ""))

    def _of_run(self, run_id: str, name: str) -> Path | None:
        run = self.tracking.call("GET", "runs/get", query=f"run_id={run_id}")["run"]["info"]
        direct = self._local(f"{run['artifact_uri'].rstrip('/')}/{name}")
        if direct is not None:
            return direct
        models = self.tracking.artifacts_dir / run["experiment_id"] / "models"
        newest = None
        for mlmodel in sorted(models.glob("m-*/artifacts/MLmodel"), key=lambda p: p.stat().st_mtime):
            if f"run_id: {run_id}\n" in mlmodel.read_text():
                model_id = mlmodel.parent.parent.name
                info = self.tracking.call("GET", f"logged-models/{model_id}")["model"]["info"]
                if info.get("name") == name:
                    newest = mlmodel.parent
        return newest

    def directory(self, source: str, what: str) -> Path:
        """The directory of the MLflow model at ``source``.

        Raises:
            ApiError: 400 naming ``what`` when no MLflow model is there.
        """
        found: Path | None = None
        if match := _RUNS.match(source):
            found = self._of_run(match["run"], match["path"].strip("/"))
        elif match := _MODELS.match(source):
            found = self._logged_model(match["id"])
        else:
            found = self._local(source)
        if found is None:
            raise invalid(f"{what}: no MLflow model (an MLmodel file) at {source!r} in the workspace's tracking server")
        return found


def filler(model_dir: Path, version_id: str):
    """``fill(directory)`` of a build from a registered version: ``model/`` and the serving file."""

    def fill(directory: Path) -> None:
        shutil.copytree(model_dir, directory / "model")
        (directory / SERVE_FILE).write_text(SERVE_SOURCE.format(version_id=version_id))

    return fill
