"""What the pipeline asks of CML API v2, over any ``cmlapi``-compatible client.

Every call uses keyword arguments (the shipped client's positional order varies by release),
goes through the retry policy, and copes with the documented quirks: paging with a fixed
``page_size``, substring ``search_filter`` (exact match confirmed here), "latest" by
``created_at`` (never ``[-1]``), the live deployment by status ``deployed``, and the 500 a
slow ``create_model_deployment`` can return after creating the deployment anyway. It answers
with the typed records of ``monitoring.cmlclient.refs``, never with the client's own objects.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from monitoring.cmlclient.refs import ApplicationRef, BuildRef, DeploymentRef, JobRef, JobRunRef, ModelRef, _field
from monitoring.cmlclient.retry import RetryPolicy
from monitoring.core.errors import BusyError, ConfigError, PlatformError, PlatformRequestError
from monitoring.core.logs import KV

log = logging.getLogger(__name__)

#: Items asked for per page; the same size goes with every page_token of one listing.
PAGE_SIZE = 100
#: The typed record a create call answers with.
R = TypeVar("R", ModelRef, BuildRef, DeploymentRef, JobRef, ApplicationRef)


class CmlApi:
    """The pipeline's view of one CML project through API v2.

    Args:
        client: ``cmlapi.default_client()`` (real or local workspace).
        project_id: the CML project (``CDSW_PROJECT_ID``).
        retry: retry policy for transient errors.
        request_timeout_s: per-call timeout handed to the client (``_request_timeout``).
        page_size: items per page of every ``list_*`` call.
    """

    def __init__(
        self,
        client: Any,
        project_id: str,
        retry: RetryPolicy,
        page_size: int = PAGE_SIZE,
        request_timeout_s: float | None = None,
    ):
        self.client = client
        self.request_timeout_s = request_timeout_s
        self.project_id = project_id
        self.retry = retry
        self.page_size = page_size

    def _call(self, operation: str, method: str, before_retry: Callable[[], Any] | None = None, **kwargs: Any) -> Any:
        if self.request_timeout_s:
            kwargs["_request_timeout"] = self.request_timeout_s  # a hung call must not block a job
        return self.retry.call(operation, getattr(self.client, method), before_retry=before_retry, **kwargs)

    def _create(
        self,
        operation: str,
        method: str,
        *,
        ref: type[R],
        created_anyway: Callable[[], R | None],
        of: Callable[[Any], R] | None = None,
        **kwargs: Any,
    ) -> R:
        """A create call that takes effect at most once: before a retry (and when out of tries)
        ``created_anyway`` looks for what an earlier attempt created after all (CML can answer an
        error to a create it carried out); a blind retry would create a second one.

        Args:
            ref: the typed record of what is created.
            created_anyway: finds it on the platform, or None.
            of: reads the client's answer as ``ref`` (default ``ref.of``).
            kwargs: the client method's arguments besides ``project_id``.
        """
        result = self._call(operation, method, before_retry=created_anyway, project_id=self.project_id, **kwargs)
        return result if isinstance(result, ref) else (of or ref.of)(result)

    def pages(self, operation: str, method: str, items_key: str, **kwargs: Any) -> Iterator[Any]:
        """Every item of a paged ``list_*`` call.

        The same ``page_size`` (and filter and sort) goes with every ``page_token``. Listing stops
        at an empty or missing token, at an empty page, and at a token already followed (a
        server that repeats itself must not loop us forever).
        """
        token, seen = "", set()
        while True:
            extra = {"page_token": token} if token else {}
            page = self._call(operation, method, page_size=self.page_size, **kwargs, **extra)
            items = list(_field(page, items_key) or [])
            yield from items
            token = _field(page, "next_page_token") or ""
            if not items or not token:
                return
            if token in seen:
                log.warning("the platform repeated a page token, listing stopped %s", KV(operation=operation))
                return
            seen.add(token)

    # -- models ----------------------------------------------------------------------------
    def find_model(self, name: str) -> ModelRef | None:
        """The project's model named exactly ``name`` (search_filter is only a substring match)."""
        hits = [
            m
            for m in map(
                ModelRef.of,
                self.pages(
                    f"list models named {name!r}",
                    "list_models",
                    "models",
                    project_id=self.project_id,
                    search_filter=json.dumps({"name": name}),
                ),
            )
            if m.name == name
        ]
        if not hits:
            return None
        if len(hits) > 1:
            raise PlatformRequestError(
                f"{len(hits)} models are named {name!r} in project {self.project_id}; rename or delete the extra ones"
            )
        return hits[0]

    def get_model(self, model_id: str) -> ModelRef:
        return ModelRef.of(
            self._call(f"get model {model_id}", "get_model", project_id=self.project_id, model_id=model_id)
        )

    def create_model(
        self, name: str, description: str, auth_enabled: bool, registered_model_id: str | None = None
    ) -> ModelRef:
        body = {
            "project_id": self.project_id,
            "name": name,
            "description": description,
            "disable_authentication": not auth_enabled,
        }
        if registered_model_id:
            body["registered_model_id"] = registered_model_id  # builds only from its versions
        return self._create(
            f"create model {name!r}",
            "create_model",
            ref=ModelRef,
            created_anyway=lambda: self.find_model(name),
            body=body,
        )

    # -- builds ----------------------------------------------------------------------------
    def create_build(
        self,
        model: ModelRef,
        file_path: str,
        function_name: str,
        comment: str,
        runtime_identifier: str | None,
        registered_model_version_id: str | None = None,
    ) -> str:
        """A build of ``file_path``; with ``registered_model_version_id``, tied to that registered version."""
        body: dict[str, Any] = {
            "project_id": self.project_id,
            "model_id": model.id,
            "comment": comment,
            "file_path": file_path,
            "function_name": function_name,
        }
        if registered_model_version_id:
            body["registered_model_version_id"] = registered_model_version_id
        body["runtime_identifier"] = self.resolve_runtime(runtime_identifier)
        return self._create(
            f"create build of model {model.name!r}",
            "create_model_build",
            ref=BuildRef,
            created_anyway=lambda: next((b for b in self.builds(model) if b.comment == comment), None),
            body=body,
            model_id=model.id,
        ).id

    def builds(self, model: ModelRef) -> list[BuildRef]:
        """The model's builds, newest first by ``created_at``."""
        items = map(
            BuildRef.of,
            self.pages(
                f"list builds of model {model.name!r}",
                "list_model_builds",
                "model_builds",
                project_id=self.project_id,
                model_id=model.id,
                sort="-created_at",
            ),
        )
        return sorted(items, key=lambda b: b.created_at, reverse=True)

    def get_build(self, model: ModelRef, build_id: str) -> BuildRef:
        return BuildRef.of(
            self._call(
                f"get build {build_id} of model {model.name!r}",
                "get_model_build",
                project_id=self.project_id,
                model_id=model.id,
                build_id=build_id,
            )
        )

    # -- deployments -----------------------------------------------------------------------
    def deployments(self, model: ModelRef, build_id: str) -> list[DeploymentRef]:
        items = self.pages(
            f"list deployments of build {build_id}",
            "list_model_deployments",
            "model_deployments",
            project_id=self.project_id,
            model_id=model.id,
            build_id=build_id,
        )
        return [DeploymentRef.of(d, build_id) for d in items]

    def live_deployment(self, model: ModelRef) -> DeploymentRef | None:
        """The deployment with status ``deployed``, newest ``created_at`` first; None if nothing serves."""
        live: list[DeploymentRef] = []
        for build in self.builds(model):
            live += [d for d in self.deployments(model, build.id) if d.status == "deployed"]
        return max(live, key=lambda d: d.created_at, default=None)

    def get_deployment(self, model: ModelRef, build_id: str, deployment_id: str) -> DeploymentRef:
        return DeploymentRef.of(
            self._call(
                f"get deployment {deployment_id}",
                "get_model_deployment",
                project_id=self.project_id,
                model_id=model.id,
                build_id=build_id,
                deployment_id=deployment_id,
            ),
            build_id,
        )

    def create_deployment(
        self, model: ModelRef, build_id: str, cpu: float, memory: float, replicas: int, environment: dict[str, str]
    ) -> DeploymentRef:
        """Create a deployment; on a 5xx, list the build's deployments before trying again (never two).

        CML's API gateway can answer 500 "context deadline exceeded" to a slow create while the
        workbench still creates the deployment; a blind retry would start a second one.
        """
        before = {d.id for d in self.deployments(model, build_id)}
        body = {
            "project_id": self.project_id,
            "model_id": model.id,
            "build_id": build_id,
            "cpu": cpu,
            "memory": memory,
            "replicas": replicas,
            "environment": environment,
        }

        def created_anyway() -> DeploymentRef | None:
            fresh = [d for d in self.deployments(model, build_id) if d.id not in before]
            return max(fresh, key=lambda d: d.created_at, default=None)

        return self._create(
            f"create deployment of build {build_id}",
            "create_model_deployment",
            ref=DeploymentRef,
            created_anyway=created_anyway,
            of=lambda d: DeploymentRef.of(d, build_id),
            body=body,
            model_id=model.id,
            build_id=build_id,
        )

    def stop_deployment(self, model: ModelRef, deployment: DeploymentRef) -> None:
        self._call(
            f"stop deployment {deployment.id}",
            "stop_model_deployment",
            project_id=self.project_id,
            model_id=model.id,
            build_id=deployment.build_id,
            deployment_id=deployment.id,
        )

    # -- runtimes ----------------------------------------------------------------------------
    def resolve_runtime(self, configured: str | None) -> str:
        """The runtime for jobs and builds: the configured one, else the newest matching runtime.

        Matching uses this engine's ``ML_RUNTIME_EDITOR/KERNEL/EDITION`` when set (inside CML),
        else a Python "Standard" runtime. Pages through every runtime (the first page is not enough).

        Raises:
            ConfigError: no runtime matches; names the setting to fill in.
        """
        if configured:
            return configured
        want = {k: os.environ.get(f"ML_RUNTIME_{k.upper()}") for k in ("editor", "kernel", "edition")}
        runtimes = list(self.pages("list runtimes", "list_runtimes", "runtimes"))
        matches = [
            r
            for r in runtimes
            if all(not v or _field(r, k) == v for k, v in want.items())
            and "python" in str(_field(r, "kernel") or "").lower()
            and (want["edition"] or _field(r, "edition") == "Standard")
        ]
        if not matches:
            raise ConfigError(
                "no ML Runtime matches this engine; set deployment.runtime_identifier and "
                "jobs.runtime_identifier (see `list_runtimes`)"
            )
        return str(_field(max(matches, key=lambda r: str(_field(r, "full_version") or "")), "image_identifier"))

    # -- jobs ------------------------------------------------------------------------------
    def jobs(self) -> list[JobRef]:
        return [JobRef.of(j) for j in self.pages("list jobs", "list_jobs", "jobs", project_id=self.project_id)]

    def create_job(self, body: dict[str, Any]) -> JobRef:
        name = body["name"]
        return self._create(
            f"create job {name!r}",
            "create_job",
            ref=JobRef,
            created_anyway=lambda: next((j for j in self.jobs() if j.name == name), None),
            body=body,
        )

    def update_job(self, job_id: str, changes: dict[str, Any]) -> JobRef:
        return JobRef.of(
            self._call(f"update job {job_id}", "update_job", body=changes, project_id=self.project_id, job_id=job_id)
        )

    def start_job_run(self, job_id: str, environment: dict[str, str] | None = None) -> JobRunRef:
        """Start a run of a job, with extra environment variables for that run.

        Raises:
            BusyError: the job already has an active run (CML allows one), naming that run.
            PlatformError: any other refusal or failure after retries.
        """
        body = {"project_id": self.project_id, "job_id": job_id}
        if environment:
            body["environment"] = environment
        try:
            return JobRunRef.of(
                self._call(
                    f"start a run of job {job_id}",
                    "create_job_run",
                    body=body,
                    project_id=self.project_id,
                    job_id=job_id,
                )
            )
        except PlatformRequestError as exc:
            if exc.status in (401, 403, 404):
                raise  # no such job or no access: not a busy job
            try:
                active = [r for r in self.job_runs(job_id, limit=self.page_size) if r.active]
            except PlatformError as listing:  # cannot tell: the refusal itself is what the user must see
                log.warning("could not list the job's runs %s", KV(job=job_id, error=str(listing)))
                active = []
            if active:
                raise BusyError(f"job {job_id} already has an active run ({active[0].id}): {exc}") from exc
            raise

    def job_runs(self, job_id: str, limit: int = 10) -> list[JobRunRef]:
        """The job's runs, newest first."""
        page = self._call(
            f"list runs of job {job_id}",
            "list_job_runs",
            project_id=self.project_id,
            job_id=job_id,
            sort="-created_at",
            page_size=limit,
        )
        runs = [JobRunRef.of(r) for r in _field(page, "job_runs") or []]
        return sorted(runs, key=lambda r: r.created_at, reverse=True)

    def get_job_run(self, job_id: str, run_id: str) -> JobRunRef:
        return JobRunRef.of(
            self._call(
                f"get run {run_id} of job {job_id}",
                "get_job_run",
                project_id=self.project_id,
                job_id=job_id,
                run_id=run_id,
            )
        )

    # -- applications ------------------------------------------------------------------------
    def applications(self) -> list[ApplicationRef]:
        return [
            ApplicationRef.of(a)
            for a in self.pages("list applications", "list_applications", "applications", project_id=self.project_id)
        ]

    def create_application(self, body: dict[str, Any]) -> ApplicationRef:
        """Create (and start) an application; before a retry, look for one created anyway (by subdomain)."""
        subdomain = body["subdomain"]
        return self._create(
            f"create application {body['name']!r}",
            "create_application",
            ref=ApplicationRef,
            created_anyway=lambda: next((a for a in self.applications() if a.subdomain == subdomain), None),
            body=body,
        )

    def update_application(self, application_id: str, changes: dict[str, Any]) -> ApplicationRef:
        """Change an application's fields; CML applies them at its next restart.

        The update body is an ``Application``, whose ``environment`` is a JSON string (a map on create).
        """
        if isinstance(changes.get("environment"), dict):
            changes = {**changes, "environment": json.dumps(changes["environment"], sort_keys=True)}
        app = self._call(
            f"update application {application_id}",
            "update_application",
            body=changes,
            project_id=self.project_id,
            application_id=application_id,
        )
        return ApplicationRef.of(app)

    def restart_application(self, application_id: str) -> ApplicationRef:
        """Restart an application (what makes an update take effect)."""
        app = self._call(
            f"restart application {application_id}",
            "restart_application",
            project_id=self.project_id,
            application_id=application_id,
        )
        return ApplicationRef.of(app)


__all__ = ["CmlApi", "PAGE_SIZE"]
