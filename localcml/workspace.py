"""``LocalWorkspace``: the embedded local CML workspace (API server, runs, builds, deployments, router)."""

from __future__ import annotations

import getpass
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from localcml.core.server import ApiServer
from localcml.core.state import ApiState
from localcml.environment import engine_env
from localcml.faults import Fault, FaultPlan
from localcml.jobs.responses import JobsApi
from localcml.jobs.runner import JobRunner
from localcml.models.builds import BUILD_TIMEOUT_SECONDS, Builder
from localcml.models.deployments import HEALTH_TIMEOUT_SECONDS, Deployer
from localcml.models.responses import ModelsApi
from localcml.models.router import BUSY_TIMEOUT_SECONDS, ModelRouter
from localcml.runtimes.catalogue import Runtimes
from monitoring.core.clock import WarpClock
from monitoring.core.logs import register_secret

log = logging.getLogger(__name__)

DEFAULT_PROJECT_NAME = "cml-monitor"


def write_json(path: Path, data: dict, mode: int = 0o644) -> None:
    """Write JSON atomically with the given file mode."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=1)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def local_user() -> dict:
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "cdsw"
    return {"username": name, "name": name, "email": f"{name}@localhost"}


class LocalWorkspace:
    """A local CML workspace serving API v2 and the model endpoint on 127.0.0.1.

    Args:
        workspace_dir: W, where state, logs, snapshots and secrets live.
        project_root: the project's files (jobs run here; builds snapshot it).
        metrics_url: model metrics store URL (default ``sqlite:///W/metrics.db``).
        busy_timeout: seconds a model call waits for a free replica before 429 ``model.busy``.
        project_name: the project created when the workspace has none by that name.
        health_timeout: seconds a deployment's replicas have to become healthy.
        build_timeout: seconds a build check may take.

    Attributes:
        faults: the workspace's ``FaultPlan`` (``W/faults.json``), shared with every engine and
            replica; ``inject("endpoint=503 x3")`` adds to it (see ``localcml.faults``).
    """

    def __init__(
        self,
        workspace_dir: str | Path,
        project_root: str | Path,
        metrics_url: str | None = None,
        busy_timeout: float = BUSY_TIMEOUT_SECONDS,
        *,
        project_name: str = DEFAULT_PROJECT_NAME,
        health_timeout: float = HEALTH_TIMEOUT_SECONDS,
        build_timeout: float = BUILD_TIMEOUT_SECONDS,
    ):
        self.workspace_dir = Path(workspace_dir).resolve()
        self.project_root = Path(project_root).resolve()
        self.metrics_url = metrics_url or f"sqlite:///{self.workspace_dir / 'metrics.db'}"
        self.busy_timeout = busy_timeout
        self.project_name = project_name
        self.health_timeout = health_timeout
        self.build_timeout = build_timeout
        self.clock = WarpClock(self.workspace_dir / "clock.json")
        self.faults = FaultPlan(self.workspace_dir)
        self.server: ApiServer | None = None
        self.project_id = ""
        self.api_key = ""
        self.model_api_key = ""

    # -- lifecycle ---------------------------------------------------------------------------
    def _secrets(self) -> None:
        path = self.workspace_dir / "secrets.json"
        data = json.loads(path.read_text()) if path.is_file() else {}
        if not data.get("api_key") or not data.get("model_api_key"):
            data = {"api_key": secrets.token_hex(24), "model_api_key": secrets.token_hex(24)}
            write_json(path, data, mode=0o600)
        self.api_key, self.model_api_key = data["api_key"], data["model_api_key"]
        register_secret(self.api_key)
        register_secret(self.model_api_key)

    def start(self) -> LocalWorkspace:
        """Serve in a background thread on a free port; write ``workspace.json`` and ``secrets.json``."""
        self.workspace_dir.mkdir(parents=True, exist_ok=True)
        self._secrets()
        self.state = ApiState(self.workspace_dir, self.clock)
        user = local_user()
        self.runtimes = Runtimes(self.state)
        self.runtimes.register_default()
        self.runner = JobRunner(
            self.state, self.project_root, self.workspace_dir, lambda: self.engine_env(), user, faults=self.faults
        )
        self.builder = Builder(
            self.state,
            self.workspace_dir,
            self.project_root,
            self.engine_env,
            timeout=self.build_timeout,
            faults=self.faults,
            observe=self.runner.observe,
        )
        self.deployer = Deployer(
            self.state,
            self.workspace_dir,
            self.builder.snapshot_dir,
            self.engine_env,
            health_timeout=self.health_timeout,
            faults=self.faults,
            observe=self.runner.observe,
        )
        self.router = ModelRouter(self.state, self.deployer, self.busy_timeout, faults=self.faults)
        jobs = JobsApi(self.state, self.runner, user, self.runtimes)
        models = ModelsApi(self.state, self.builder, self.deployer, self.runtimes, user)
        project = next((p for p in self.state.list("project") if p["name"] == self.project_name), None)
        if project is None:
            project = jobs.create_project(
                {}, {}, {"name": self.project_name, "description": "Local CML workspace project"}
            )
        self.project_id = project["id"]
        self.server = ApiServer(
            {**jobs.handlers(), **models.handlers()},
            self.api_key,
            self.router,
            self.status,
            faults=self.faults,
            engine_caller=self.runner.caller,
        )
        self.runner.recover()
        self.builder.recover()
        self.server.start()
        self.deployer.recover()
        write_json(self.workspace_dir / "workspace.json", self.status())
        log.info("local workspace serving at %s (W=%s)", self.url, self.workspace_dir)
        return self

    def stop(self) -> None:
        """Stop serving, stop every active run and every replica process."""
        if self.server is None:
            return
        self.server.stop()
        self.runner.stop_all()
        self.deployer.stop_all()
        info = self.workspace_dir / "workspace.json"
        try:
            written = json.loads(info.read_text())
            if written.get("pid") == os.getpid() and written.get("url") == self.url:
                info.unlink()
        except (OSError, ValueError):
            pass
        self.state.close()
        self.server = None

    def __enter__(self) -> LocalWorkspace:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- facts -------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self.server is None:
            raise RuntimeError("the local workspace is not started")
        return self.server.server_port

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the bare workbench URL (API under ``/api/v2``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def model_url(self) -> str:
        return f"{self.url}/model"

    def status(self) -> dict:
        return {
            "url": self.url,
            "pid": os.getpid(),
            "port": self.port,
            "project_id": self.project_id,
            "project_name": self.project_name,
            "workspace_dir": str(self.workspace_dir),
            "project_root": str(self.project_root),
            "metrics_url": self.metrics_url,
            "model_url": self.model_url,
        }

    def engine_env(self, code_dir: str | Path | None = None) -> dict[str, str]:
        """The variables a CML engine of this project has (``PYTHONPATH`` = shim, then ``code_dir``).

        Args:
            code_dir: where the engine's code lives (default: the project root).
        """
        return engine_env(
            url=self.url,
            api_key=self.api_key,
            model_api_key=self.model_api_key,
            project_id=self.project_id,
            project_name=self.project_name,
            workspace_dir=self.workspace_dir,
            code_dir=code_dir or self.project_root,
            metrics_url=self.metrics_url,
        )

    def set_now(self, now_ms: int) -> None:
        """Warp the workspace clock (every engine and replica reads it) so that now is ``now_ms``."""
        self.clock.set_now(now_ms)

    def inject(self, *faults: str | Fault) -> list[Fault]:
        """Add faults to the workspace's plan (``"endpoint=503 x3"``; see ``localcml.faults``).

        Raises:
            ConfigError: a fault text that is not valid, naming it.
        """
        return self.faults.add(*faults)

    def client(self):
        """A ``CMLServiceApi`` for this workspace."""
        from localcml.client.api import default_client

        return default_client(url=self.url, cml_api_key=self.api_key)
