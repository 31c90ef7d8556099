"""A bootstrapped project on an in-process local workspace, copied per test, and the invariants every fault must keep.

The template (built once per session) is a project whose v1 serves, whose first traffic cycle is
labelled and evaluated, and whose latest decision is an unconsumed ``redeploy`` (drift starts at
once, so v1 is wrong on the traffic). Each test gets a copy and a started workspace on it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from localcml.environment import activate
from localcml.metrics.store import MetricsStore
from localcml.workspace import LocalWorkspace
from monitoring.app import graph
from monitoring.app.demo import verdict_fields
from monitoring.app.jobrun import run_job
from monitoring.app.wiring import build_context
from monitoring.cmlclient import connect
from monitoring.cmlclient.endpoint import ModelEndpoint
from monitoring.cmlclient.refs import RUN_TERMINAL
from monitoring.config.pipeline import PipelineConfig, load_config
from monitoring.core.durations import to_ms
from monitoring.workflows.accuracy import compute_accuracy
from monitoring.workflows.bootstrap import bootstrap
from monitoring.workflows.context import Context, Outcome
from monitoring.workflows.evaluate import evaluate_thresholds
from monitoring.workflows.redeploy import redeploy
from monitoring.workflows.traffic import post_due_labels, simulate_traffic
from tests.project import make_project
from tests.waiting import wait_for

HOUR = 3_600_000
#: Small and fast; drift from the first cycle so that v1 breaches and redeploy has a reason to act.
FAST = {
    "scenario": {
        "rows_per_cycle": 200,
        "training_rows": 1000,
        "concurrency": 4,
        "request_timeout": "3s",
        "drift": {"start_after": "0s"},
    },
    "retraining": {"min_rows": 100, "min_improvement": 0.0, "lookback": "2h"},
    "deployment": {"poll_interval": "100ms", "build_timeout": "60s", "deploy_timeout": "60s"},
    "platform": {"retry": {"attempts": 4, "initial": "20ms", "maximum": "100ms", "jitter": "10ms"}},
    "lifecycle": {"experiments": "off"},  # tests/lifecycle turn it on
}
WORKSPACE = ".cml-local"
BUSY_TIMEOUT_S = 5.0
HEALTH_TIMEOUT_S = 60.0
WAIT_S = 90.0
JOBS = {
    "simulate_traffic": simulate_traffic,
    "compute_accuracy": compute_accuracy,
    "evaluate_thresholds": evaluate_thresholds,
    "redeploy": redeploy,
}


@contextlib.contextmanager
def activated(env: dict[str, str]) -> Iterator[None]:
    """This process acts as an engine of the workspace (``import cdsw, cmlapi`` reach it); undone on exit."""
    saved_env = {k: os.environ.get(k) for k in env}
    saved_path = list(sys.path)
    saved_modules = {n for n in sys.modules if n.split(".")[0] in ("cdsw", "cmlapi", "cml")}
    activate(env)
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        sys.path[:] = saved_path
        for name in [n for n in sys.modules if n.split(".")[0] in ("cdsw", "cmlapi", "cml")]:
            if name not in saved_modules:
                del sys.modules[name]
        from localcml.metrics import sdk

        sdk.close_stores()


class SpyEndpoint(ModelEndpoint):
    """The real endpoint client, noting each uuid the caller actually received an answer for."""

    answered: list[str]

    def predict(self, request: dict[str, Any]) -> tuple[Any, str]:
        prediction, uuid = super().predict(request)
        self.answered.append(uuid)  # list.append is atomic: traffic calls this from several threads
        return prediction, uuid


@dataclass
class Rig:
    """One test's project, workspace and pipeline context."""

    root: Path
    ws: LocalWorkspace
    cfg: PipelineConfig
    config_path: Path
    t0: int
    ctx: Context = field(init=False)
    answered: list[str] = field(default_factory=list)
    template_decision: str = ""
    last_log: str = ""

    def __post_init__(self) -> None:
        self.ctx = self.context()

    def context(self, run_id: str | None = None, cfg: PipelineConfig | None = None, spy: bool = False) -> Context:
        """A context wired as a job's; with ``spy``, its endpoint clients note each answered uuid."""
        cfg = cfg or self.cfg
        platform = connect(cfg, self.root, clock=self.ws.clock)
        if spy:
            platform.endpoint_type = type("RigEndpoint", (SpyEndpoint,), {"answered": self.answered})
        if run_id:
            platform.run_id = run_id
        return build_context(cfg, self.root, platform=platform)

    # -- time and workflows ----------------------------------------------------------------
    def at(self, hours: float) -> int:
        """Warp the workspace clock to ``hours`` after the template's first cycle."""
        now = self.t0 + int(hours * HOUR)
        self.ws.set_now(now)
        return now

    def traffic(self, ctx: Context | None = None) -> Outcome:
        """One traffic cycle, in process, noting which predictions got an answer."""
        ctx = ctx or self.ctx
        spied = dataclasses.replace(
            ctx.platform, endpoint_type=type("RigEndpoint", (SpyEndpoint,), {"answered": self.answered})
        )
        return simulate_traffic(dataclasses.replace(ctx, platform=spied))

    def job(self, name: str, workflow: Callable[[Context], Outcome] | None = None) -> tuple[int, dict[str, str]]:
        """Run a workflow the way its job does (config, logging, verdict, exit code), in process.

        Traffic jobs note which predictions got an answer, as ``traffic`` does.
        """
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = run_job(
                name,
                workflow or JOBS[name],
                ["--project-root", str(self.root), "--config", str(self.config_path)],
                wiring=lambda cfg, root: self.context(cfg=cfg, spy=name == "simulate_traffic"),
            )
        self.last_log = out.getvalue()
        return code, verdict_fields(self.last_log)

    def reconfigure(self, **sections: dict[str, Any]) -> None:
        """Change config sections for this test: ``rig.reconfigure(scenario={"request_timeout": "1s"})``."""
        data = yaml.safe_load(self.config_path.read_text())
        for section, values in sections.items():
            data[section] = {**data.get(section, {}), **values}
        self.config_path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.cfg = load_config(self.config_path)
        self.ctx.cfg = self.cfg

    def job_run(self, name: str, environment: dict[str, str] | None = None) -> tuple[str, dict[str, str], str]:
        """Run a job of the graph through the workspace (a real engine process).

        Returns:
            The run's status, its VERDICT fields and its whole log.
        """
        api = self.ctx.platform.api
        job = next(j for j in api.jobs() if j.name == f"cml-monitor {name}")
        run = api.start_job_run(job.id, environment=environment or {})
        run_id = run.id

        def finished():
            current = api.client.get_job_run(self.ws.project_id, job.id, run_id)  # raw: no retry eats a fault
            return current if str(current.status).upper() in RUN_TERMINAL else None

        status = str(wait_for(finished, f"run {run_id} of {name}", WAIT_S).status)
        text = (self.ws.workspace_dir / "runs" / f"{run_id}.log").read_text()
        return status, verdict_fields(text), text

    # -- facts -----------------------------------------------------------------------------
    @property
    def model(self):
        return self.ctx.require_model()

    def live(self):
        return self.ctx.platform.api.live_deployment(self.model)

    def records(self) -> list[dict[str, Any]]:
        """Every record of the workspace's metrics store (all deployments)."""
        store = MetricsStore(self.ws.metrics_url)
        try:
            return store.read(start_ms=0)
        finally:
            store.close()

    def pending(self) -> dict[str, tuple[int, int | None]]:
        """The state store's label queue: uuid -> (label, posted_ms)."""
        rows = self.ctx.store.db.query("SELECT uuid, label, posted_ms FROM pending_labels")
        return {u: (int(lab), None if p is None else int(p)) for u, lab, p in rows}

    def builds(self) -> list[Any]:
        return self.ctx.platform.api.builds(self.model)

    def deployments(self) -> list[Any]:
        api = self.ctx.platform.api
        return [d for b in self.builds() for d in api.deployments(self.model, b.id)]

    def settle(self) -> int:
        """Clear the faults, let every queued label fall due and post it; returns how many were posted."""
        self.ws.faults.clear()
        now = self.ws.clock.now_ms() + to_ms(self.cfg.scenario.label_delay) + 1
        self.ws.set_now(now)
        return post_due_labels(self.ctx, now, self.cfg.windows.label_key).posted


def build_template(root: Path) -> dict[str, Any]:
    """Bootstrap v1, apply the job graph, run two labelled cycles and evaluate: a redeploy decision waits."""
    config_path = make_project(root, FAST)
    cfg = load_config(config_path)
    ws = LocalWorkspace(root / WORKSPACE, root, busy_timeout=BUSY_TIMEOUT_S, health_timeout=HEALTH_TIMEOUT_S).start()
    try:
        with activated(ws.engine_env()):
            window = cfg.windows.length_ms
            t0 = (ws.clock.now_ms() // window) * window - 48 * HOUR + 60_000
            ws.set_now(t0 - HOUR)
            rig = Rig(root, ws, cfg, config_path, t0)
            bootstrap(rig.ctx)
            graph.apply(rig.ctx.platform.api, cfg)
            rig.at(0)
            rig.traffic()
            rig.at(1)
            rig.traffic()
            compute_accuracy(rig.ctx)
            outcome = evaluate_thresholds(rig.ctx)
            assert outcome.fields["decision_action"] == "redeploy", outcome
            answered = list(rig.answered)
            rig.ctx.store.close()
    finally:
        ws.stop()
    info = {"t0": t0, "answered": answered, "decision": outcome.fields["decision"]}
    (root / "template.json").write_text(json.dumps(info))
    return info


@contextlib.contextmanager
def rig_from(
    template: Path, dest: Path, before_start: Callable[[Path], None] | None = None, **workspace_args: Any
) -> Iterator[Rig]:
    """A copy of the template with its workspace started and v1 serving again.

    ``before_start(dest)`` changes the copy before its workspace starts (e.g. moves a store).
    """
    shutil.copytree(template, dest, symlinks=True)
    if before_start is not None:
        before_start(dest)
    info = json.loads((dest / "template.json").read_text())
    config_path = dest / "config" / "pipeline.yaml"
    cfg = load_config(config_path)
    args = {"busy_timeout": BUSY_TIMEOUT_S, "health_timeout": HEALTH_TIMEOUT_S, **workspace_args}
    ws = LocalWorkspace(dest / WORKSPACE, dest, **args).start()
    try:
        with activated(ws.engine_env()):
            rig = Rig(dest, ws, cfg, config_path, info["t0"])
            rig.answered.extend(info["answered"])
            rig.template_decision = info["decision"]
            wait_for(rig.live, "v1 to serve again after the workspace restarted", WAIT_S)
            rig.at(1.05)
            yield rig
            rig.ctx.store.close()
    finally:
        ws.stop()


def run_concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released at the same moment; returns results (or the exceptions raised)."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:  # noqa: BLE001 - handed back to the test
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT_S * 2)
    return results
