"""``LocalWorkspace``: the embedded local CML workspace, composed of its services over one HTTP server."""

from __future__ import annotations

import getpass
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from cmlbase import metrics_store
from cmlbase.clock import WarpClock
from cmlbase.logs import KV, register_secret
from localcml.applications import urls as application_urls
from localcml.applications.backend import Applications
from localcml.applications.proxy import forwarder
from localcml.applications.responses import ApplicationsApi
from localcml.core import hosts
from localcml.core.dirlock import DirectoryLock
from localcml.core.process_table import ProcessTable
from localcml.core.server import ApiServer, Services
from localcml.core.service import Routes, route_table
from localcml.core.state import ApiState
from localcml.datalake import connections as datalake_connections
from localcml.datalake import urls as datalake_urls
from localcml.datalake.responses import SparkSettingsApi
from localcml.environment import engine_env
from localcml.experiments import urls as experiment_urls
from localcml.experiments.responses import ExperimentsApi
from localcml.experiments.tracking import TrackingServer
from localcml.faults import Fault, FaultPlan
from localcml.faults import admin as faults_admin
from localcml.jobs import urls as job_urls
from localcml.jobs.responses import JobsApi
from localcml.jobs.runner import JobRunner
from localcml.jobs.scheduler import Scheduler
from localcml.jobs.scheduler import admin as scheduler_admin
from localcml.metrics.responses import MetricsApi
from localcml.metrics.service import answerer
from localcml.metrics.store import MetricsStore
from localcml.models import urls as model_urls
from localcml.models.builds import BUILD_TIMEOUT_SECONDS, Builder
from localcml.models.deployments import HEALTH_TIMEOUT_SECONDS, Deployer
from localcml.models.responses import ModelsApi
from localcml.models.router import BUSY_TIMEOUT_SECONDS, ModelRouter
from localcml.models.supervisor import RestartPolicy
from localcml.projects import urls as project_urls
from localcml.projects.backend import Projects
from localcml.projects.files import DEFAULT_MAX_BYTES as BUILD_MAX_BYTES
from localcml.projects.responses import ProjectsApi
from localcml.registry import urls as registry_urls
from localcml.registry.responses import RegistryApi
from localcml.runtimes import urls as runtime_urls
from localcml.runtimes.catalogue import Runtimes, engine_variables
from localcml.runtimes.responses import RuntimesApi
from localcml.unsupported import urls as unsupported_urls

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
    """A local CML workspace serving API v2, the model endpoint, metrics and applications on 127.0.0.1.

    Args:
        workspace_dir: W, where state, logs, snapshots and secrets live.
        project_root: the files of the workspace's own project (its jobs run here; builds snapshot it).
        metrics_url: model metrics store URL (default ``sqlite:///W/metrics.db``).
        busy_timeout: seconds a model call waits for a free replica before 429 ``model.busy``.
        project_name: the name of the workspace's own project (created on first start).
        health_timeout: seconds a deployment's replicas have to become healthy.
        build_timeout: seconds a build check may take.
        schedules: fire cron schedules (the daemon does; an in-process workspace of a test may not).
        restart_policy: how dead model replicas are restarted (default: Kubernetes' backoff).
        build_max_bytes: the most a model build may copy of a project (its files less workspaces,
            virtualenvs, state stores and caches: see ``localcml.projects.files``).
        data_connections: the names ``cml.data_v1.get_connection`` opens, each a Spark data lake with
            its own warehouse and catalog in ``W/datalake/<name>/`` (see ``localcml.datalake``).

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
        schedules: bool = False,
        restart_policy: RestartPolicy | None = None,
        build_max_bytes: int = BUILD_MAX_BYTES,
        data_connections: tuple[str, ...] = (datalake_connections.DEFAULT_CONNECTION,),
    ):
        self.workspace_dir = Path(workspace_dir).resolve()
        self.project_root = Path(project_root).resolve()
        self.metrics_url = metrics_url or metrics_store.default_url(self.workspace_dir)
        self.busy_timeout = busy_timeout
        self.project_name = project_name
        self.health_timeout = health_timeout
        self.build_timeout = build_timeout
        self.schedules = schedules
        self.restart_policy = restart_policy
        self.build_max_bytes = build_max_bytes
        self.data_connections = tuple(data_connections)
        self.lock = DirectoryLock(self.workspace_dir)
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

    def _compose(self) -> Services:
        """Build every service over the state; returns what the server answers with."""
        user = local_user()
        self.state = ApiState(self.workspace_dir, self.clock)
        self.projects = Projects(self.state, self.workspace_dir, self.project_root, user)
        self.runtimes = Runtimes(self.state)
        self.runtimes.register_catalogue()
        own = self.projects.ensure_own(self.project_name, "Local CML workspace project")
        self.project_id = own["id"]
        self.runner = JobRunner(
            self.state, self.projects.directory, self.workspace_dir, self._project_env, user, faults=self.faults
        )
        self.builder = Builder(
            self.state,
            self.workspace_dir,
            self.projects.directory,
            self._engine_env_in,
            timeout=self.build_timeout,
            faults=self.faults,
            observe=self.runner.observe,
            max_bytes=self.build_max_bytes,
        )
        self.deployer = Deployer(
            self.state,
            self.workspace_dir,
            self.builder.snapshot_dir,
            self._engine_env_in,
            health_timeout=self.health_timeout,
            faults=self.faults,
            observe=self.runner.observe,
            restart_policy=self.restart_policy,
        )
        self.apps = Applications(self.state, self.workspace_dir, self.projects.directory, self._project_env)
        self.router = ModelRouter(self.state, self.deployer, self.busy_timeout, faults=self.faults)
        self.scheduler = Scheduler(self.state, self.runner, self.clock, self.idle)
        self.metrics_store = MetricsStore(self.metrics_url)
        self.tracking = TrackingServer(self.workspace_dir, faults=self.faults)
        registry = RegistryApi(self.tracking, lambda: self.project_id, lambda: self.url, user)
        services = [
            (Routes.of("projects", project_urls), ProjectsApi(self.projects, self._drop_project)),
            (
                Routes.of("jobs", job_urls),
                JobsApi(self.state, self.runner, user, self.runtimes, self.scheduler.wake),
            ),
            (
                Routes.of("models", model_urls),
                ModelsApi(self.state, self.builder, self.deployer, self.runtimes, user, registry),
            ),
            (
                Routes.of("experiments", experiment_urls),
                ExperimentsApi(self.state, self.tracking, lambda: self.project_id, user),
            ),
            (Routes.of("registry", registry_urls), registry),
            (Routes.of("applications", application_urls), ApplicationsApi(self.state, self.apps, self.runtimes, user)),
            (Routes.of("runtimes", runtime_urls), RuntimesApi(self.state)),
            (Routes.of("data lake", datalake_urls), SparkSettingsApi(self.workspace_dir)),
            (Routes.of("unsupported", unsupported_urls), None),
        ]
        return Services(
            handlers=route_table(services),
            api_key=self.api_key,
            router=self.router,
            status=self.status,
            faults=self.faults,
            engine_caller=self.runner.caller,
            metrics=answerer(MetricsApi(self.metrics_store, self.clock.now_ms)),
            forward=forwarder(self.apps),
            tracking=self.tracking.forward,
            local={"faults": faults_admin(self.faults), "scheduler": scheduler_admin(self.scheduler)},
        )

    def start(self) -> LocalWorkspace:
        """Serve in a background thread; write ``workspace.json`` and ``secrets.json``.

        What a previous workspace of W left running (it died, or was killed) is taken over
        first: engines, replicas and applications still running are adopted, the rest of its
        processes killed (see "When the workspace restarts" in docs/local-workspace.md). The
        server takes the previous one's port when it is free, so that adopted engines and
        replicas, which know that port, still reach it.

        Raises:
            WorkspaceBusy: another live workspace serves W.
        """
        self.workspace_dir.mkdir(parents=True, exist_ok=True)
        self.lock.acquire()
        try:
            self._secrets()
            datalake_connections.define(self.workspace_dir, self.data_connections)
            hosts.install()  # this process reaches modelservice.<domain> too
            self.server = self._bind(self._compose())
            table = ProcessTable.scan(self.workspace_dir)
            self.runner.recover(table)
            self.builder.recover(table)
            self.deployer.recover(table)
            self.apps.recover(table)
            table.kill_unclaimed()
            table.forget_stale()
        except BaseException:
            self.lock.release()
            raise
        self.server.start()
        if self.schedules:
            self.scheduler.start()
        write_json(self.workspace_dir / "workspace.json", self.status())
        log.info("local workspace serving at %s (W=%s)", self.url, self.workspace_dir)
        return self

    def _bind(self, services: Services) -> ApiServer:
        """The server, on the port of the previous workspace of W if it left one that is free."""
        try:
            previous = int(json.loads((self.workspace_dir / "workspace.json").read_text())["port"])
        except (OSError, ValueError, KeyError, TypeError):
            previous = 0
        if previous:
            try:
                return ApiServer(services, previous)
            except OSError as exc:
                log.warning(
                    "previous port taken %s",
                    KV(port=previous, error=exc, effect="engines and replicas left running cannot reach the API"),
                )
        return ApiServer(services)

    def stop(self) -> None:
        """Stop serving, stop every active run, build check, replica and application process."""
        if self.server is None:
            return
        self.scheduler.stop()
        self.server.stop()
        self.runner.stop_all()
        self.builder.stop_all()
        self.deployer.stop_all()
        self.apps.stop_all()
        self.tracking.stop()
        info = self.workspace_dir / "workspace.json"
        try:
            written = json.loads(info.read_text())
            if written.get("pid") == os.getpid() and written.get("url") == self.url:
                info.unlink()
        except (OSError, ValueError):
            pass
        self.metrics_store.close()
        self.state.close()
        self.server = None
        self.lock.release()

    def __enter__(self) -> LocalWorkspace:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def idle(self) -> bool:
        """Nothing is running: no active job run, no build checking, no deployment coming up or going down."""
        return not (self.runner.busy() or self.builder.busy() or self.deployer.busy())

    def _drop_project(self, project_id: str) -> None:
        """Stop what a project runs, and forget its jobs, models and applications (it is being deleted)."""
        self.runner.stop_project(project_id)
        self.deployer.stop_project(project_id)
        self.apps.stop_project(project_id)
        for kind in ("job", "model", "application"):
            for obj in self.state.list(kind, project_id):
                self.state.delete(kind, obj["id"])

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
        """``http://modelservice.127.0.0.1:<port>/model``, as CML names its model service."""
        return f"http://modelservice.127.0.0.1:{self.port}/model"

    def status(self) -> dict:
        return {
            "url": self.url,
            "pid": os.getpid(),
            "port": self.port,
            "project_id": self.project_id,
            "project_name": self.project_name,
            "project_env": self.projects.environment(self.project_id),
            "runtime_env": engine_variables(self.runtimes.default()["image_identifier"], self.state),
            "workspace_dir": str(self.workspace_dir),
            "project_root": str(self.project_root),
            "metrics_url": self.metrics_url,
            "model_url": self.model_url,
        }

    def engine_env(self, code_dir: str | Path | None = None, project_id: str | None = None) -> dict[str, str]:
        """The variables a CML engine of a project has (``PYTHONPATH`` = shim, then ``code_dir``).

        Args:
            code_dir: where the engine's code lives (default: the project's directory).
            project_id: the project (default: the workspace's own).
        """
        project_id = project_id or self.project_id
        project = self.state.require("project", project_id)
        return engine_env(
            url=self.url,
            api_key=self.api_key,
            model_api_key=self.model_api_key,
            project_id=project["id"],
            project_name=project["name"],
            workspace_dir=self.workspace_dir,
            code_dir=code_dir or self.projects.directory(project_id),
            metrics_url=self.metrics_url,
            project=self.projects.environment(project_id),
            runtime=engine_variables(self.runtimes.default()["image_identifier"], self.state),
        )

    def _project_env(self, project_id: str | None) -> dict[str, str]:
        return self.engine_env(project_id=project_id)

    def _engine_env_in(self, project_id: str | None, code_dir: Path) -> dict[str, str]:
        return self.engine_env(code_dir, project_id)

    def set_now(self, now_ms: int) -> None:
        """Warp the workspace clock (every engine and replica reads it) so that now is ``now_ms``."""
        self.clock.set_now(now_ms)
        if self.server is not None:
            self.scheduler.wake()

    def inject(self, *faults: str | Fault) -> list[Fault]:
        """Add faults to the workspace's plan (``"endpoint=503 x3"``; see ``localcml.faults``).

        Raises:
            ConfigError: a fault text that is not valid, naming it.
        """
        return self.faults.add(*faults)

    def client(self):
        """A ``CMLServiceApi`` for this workspace."""
        from localcml.client import default_client

        return default_client(url=self.url, cml_api_key=self.api_key)
