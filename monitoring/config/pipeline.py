"""Strict, typed pipeline configuration loaded from YAML; errors name the file and field path."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from cmlbase import metrics_store
from monitoring.config.data import DataConfig, data_problems
from monitoring.config.graph_rules import (
    GROUND_TRUTH_SCRIPT,
    REDEPLOY_SCRIPT,
    SIMULATE_TRAFFIC_SCRIPT,
    default_graph,
    graph_problems,
)
from monitoring.config.ground_truth import GroundTruthConfig
from monitoring.config.metric_registry import METRICS, Direction, metric_spec, metric_task_problem
from monitoring.config.model_spec import ModelConfig
from monitoring.config.retraining import ContractConfig, GateConfig, StrategyConfig
from monitoring.config.slices import SlicesConfig
from monitoring.core.durations import Duration, to_ms
from monitoring.core.errors import ConfigError
from monitoring.core.paths import InsidePath, sqlite_path_inside

DEFAULT_CONFIG = "config/pipeline.yaml"
#: Discriminator tags of the data sources (pydantic puts them into error paths; ``_loc`` drops them).
SOURCE_KINDS = ("csv", "parquet", "sql", "synthetic", "metrics_store")
#: A problem that starts with the dotted key it is about (``thresholds.policies[1].metric: ...``).
_KEYED = re.compile(r"^[A-Za-z_][\w.\[\]]*: ")
CONFIG_ENV = "CML_MONITOR_CONFIG"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# -- model and data ------------------------------------------------------------------------
class DriftConfig(Strict):
    kind: Literal["none", "covariate", "concept", "both"] = "concept"
    start_after: Duration = timedelta(hours=4)
    """Time after the scenario's first traffic run at which drift begins."""
    strength: float = Field(default=1.0, ge=0, le=5)


class ScenarioConfig(Strict):
    seed: int = 42
    rows_per_cycle: int = Field(default=600, ge=1, le=10_000_000)
    training_rows: int = Field(default=4000, ge=50)
    cycle: Duration = timedelta(hours=1)
    """Simulated time one traffic run covers (the demo advances the local clock by this)."""
    label_delay: Duration = timedelta(minutes=30)
    label_noise: float = Field(default=0.03, ge=0, le=0.5)
    drift: DriftConfig = DriftConfig()
    concurrency: int = Field(default=4, ge=1, le=64)
    request_timeout: Duration = timedelta(seconds=30)


# -- metrics and thresholds ----------------------------------------------------------------
class WindowConfig(Strict):
    length: Duration = timedelta(hours=1)
    label_horizon: Duration = timedelta(hours=3)
    """How long after a window ends its labels may still arrive (windows are re-read until then)."""
    chunk: Duration = timedelta(hours=1)
    """Time span read from the metrics store in one call (bounds memory)."""
    prediction_key: str = "prediction"
    label_key: str = "final_label"
    features_key: str = "input_features"
    probability_key: str = "probability"
    """Metric holding a binary classifier's probability of its positive class."""
    probabilities_key: str = "probabilities"
    """Metric holding ``{class: probability}`` of every class (multi-class)."""

    @model_validator(mode="after")
    def _positive(self) -> WindowConfig:
        if self.length.total_seconds() <= 0 or self.chunk.total_seconds() <= 0:
            raise ValueError("length and chunk must be positive durations")
        return self

    @property
    def length_ms(self) -> int:
        """``length`` in milliseconds: the grid every window sits on (``window_start``)."""
        return to_ms(self.length)


#: Any metric of the registry; the model's task decides which are allowed (``PipelineConfig``).
if TYPE_CHECKING:
    MetricName = str  # the Literal below is built at run time, from the registry
else:
    MetricName = Literal[tuple(METRICS)]


def _side_problem(metric: str, side: str, value: float) -> str | None:
    """What is wrong with ``min`` or ``max`` (``side``) = ``value`` for ``metric`` (None when nothing is).

    A quality metric (higher is better) takes a floor, ``min``; an error metric (lower is
    better) a ceiling, ``max``; the mean error (bias) a ceiling on its size, ``max``.
    """
    spec = metric_spec(metric)
    want = "min" if spec.direction is Direction.HIGHER else "max"
    if side != want:
        kind = {
            Direction.HIGHER: "a quality metric (higher is better)",
            Direction.LOWER: "an error metric (lower is better)",
            Direction.ZERO: "the mean error (its size is limited)",
        }[spec.direction]
        return f"{metric} is {kind}: set {want} (a {'floor' if want == 'min' else 'ceiling'}), not {side}"
    low = 0.0 if spec.direction is Direction.ZERO else spec.low
    if value < low:
        return f"{metric} is at least {low:g}: must be greater than or equal to {low:g}"
    if value > spec.high:
        return f"{metric} is at most {spec.high:g}: must be less than or equal to {spec.high:g}"
    return None


class _MetricLimit(Strict):
    """A metric with a floor (``min``, quality metrics) or a ceiling (``max``, error metrics)."""

    metric: MetricName = "accuracy"
    min: float | None = None
    max: float | None = None

    @field_validator("min", "max")
    @classmethod
    def _side(cls, value: float | None, info: ValidationInfo) -> float | None:
        metric = info.data.get("metric")
        if value is not None and metric is not None:
            problem = _side_problem(metric, str(info.field_name), value)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_limit(self) -> _MetricLimit:
        want = "min" if metric_spec(self.metric).direction is Direction.HIGHER else "max"
        if self.min is None and self.max is None:
            raise ValueError(f"set {want}: the {'floor' if want == 'min' else 'ceiling'} of {self.metric}")
        return self

    @property
    def limit(self) -> float:
        """The floor or the ceiling, whichever the metric takes."""
        limit = self.min if self.min is not None else self.max
        assert limit is not None  # _one_limit: one of them is set
        return limit


class AbsolutePolicy(_MetricLimit):
    """The metric must stay above ``min`` (quality) or below ``max`` (error; bias: its size)."""

    kind: Literal["absolute"]


class RelativeDropPolicy(Strict):
    """A quality metric may fall at most ``max_drop`` (a fraction) below its baseline."""

    kind: Literal["relative_drop"]
    metric: MetricName = "accuracy"
    max_drop: float = Field(gt=0, le=1)
    """Largest allowed fall below the baseline, as a fraction of it (0.1 = 10%)."""
    baseline: Literal["training", "first_windows"] = "training"
    baseline_windows: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _quality(self) -> RelativeDropPolicy:
        if metric_spec(self.metric).direction is not Direction.HIGHER:
            raise ValueError(
                f"{self.metric} is an error metric (lower is better): use kind relative_rise with max_rise"
            )
        return self


class RelativeRisePolicy(Strict):
    """An error metric may rise at most ``max_rise`` (a fraction) above its baseline."""

    kind: Literal["relative_rise"]
    metric: MetricName
    max_rise: float = Field(gt=0, le=100)
    """Largest allowed rise above the baseline, as a fraction of it (0.2 = 20%)."""
    baseline: Literal["training", "first_windows"] = "training"
    baseline_windows: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _error(self) -> RelativeRisePolicy:
        direction = metric_spec(self.metric).direction
        if direction is Direction.HIGHER:
            raise ValueError(
                f"{self.metric} is a quality metric (higher is better): use kind relative_drop with max_drop"
            )
        if direction is Direction.ZERO:
            raise ValueError(
                f"{self.metric} is centred on 0, so a rise relative to its baseline means nothing: "
                "use kind absolute or bound with max"
            )
        return self


class WilsonPolicy(Strict):
    """Accuracy's Wilson interval at ``confidence``: fails only when even its upper bound is below ``min``."""

    kind: Literal["wilson"]
    metric: Literal["accuracy"] = "accuracy"
    min: float = Field(ge=0, le=1)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class BoundPolicy(_MetricLimit):
    """Any metric's confidence bound (``monitoring.domain.metrics.bounds``: Wilson, t or bootstrap):
    fails only when the whole interval is past the limit, so a handful of labels proves nothing."""

    kind: Literal["bound"]
    confidence: float = Field(default=0.95, gt=0.5, lt=1)


class MinLabelledPolicy(Strict):
    kind: Literal["min_labelled"]
    min: int = Field(ge=1)


class DriftPolicy(Strict):
    """Input drift against the training reference: PSI of every feature (numeric and categorical),
    optionally KS (numeric) and the Jensen-Shannon distance (categorical)."""

    kind: Literal["drift"]
    max_psi: float = Field(default=0.25, gt=0)
    max_ks: float | None = Field(default=None, gt=0, le=1)
    """Largest two-sample KS statistic of a numeric feature (none: not checked)."""
    max_js: float | None = Field(default=None, gt=0, le=1)
    """Largest Jensen-Shannon distance of a categorical feature (none: not checked)."""
    action: Literal["warn", "act"] = "warn"


#: The metrics judged per slice.
SLICE_METRICS = ("accuracy", "precision", "recall", "mae")
#: The metrics performance estimation gives before labels (CBPE for a classifier, loss estimation for a regressor).
ESTIMABLE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "mae", "rmse")


class EstimatedPolicy(_MetricLimit):
    """The metric estimated without labels (``monitoring.domain.estimation``) must stay above ``min``
    (quality) or below ``max`` (error); judged on the newest window, labelled or not. ``warn`` only
    reports; ``act`` counts as a breach, for labels that come too late to be useful."""

    kind: Literal["estimated"]
    action: Literal["warn", "act"] = "warn"
    min_rows: int = Field(default=30, ge=1)
    """Fewest rows an estimate must be over to be judged."""

    @model_validator(mode="after")
    def _estimable(self) -> EstimatedPolicy:
        if self.metric not in ESTIMABLE_METRICS:
            raise ValueError(
                f"{self.metric} cannot be estimated without labels: use one of {', '.join(ESTIMABLE_METRICS)}"
            )
        return self


class SlicesPolicy(Strict):
    """Every configured slice (``slices``) against the same slice at training: flagged when its metric is
    worse by more than ``tolerance``, with Benjamini-Hochberg keeping the false discovery rate at ``fdr``
    across the slices and metrics of the window."""

    kind: Literal["slices"]
    metrics: list[MetricName] = Field(default_factory=list)
    """Of accuracy, precision, recall (a classifier) or mae (a regressor); empty: accuracy or mae."""
    fdr: float = Field(default=0.01, gt=0, lt=1)
    """The false discovery rate; with every slice stable, about the share of windows with a false flag."""
    tolerance: float = Field(default=0.02, ge=0, lt=1)
    """A drop smaller than this is not worth a flag: absolute for a share, a fraction of the MAE."""
    action: Literal["warn", "act"] = "warn"

    @model_validator(mode="after")
    def _sliceable(self) -> SlicesPolicy:
        bad = [m for m in self.metrics if m not in SLICE_METRICS]
        if bad:
            raise ValueError(f"metrics: {', '.join(bad)} not judged per slice (use {', '.join(SLICE_METRICS)})")
        return self


class JointDriftPolicy(Strict):
    """The domain classifier (reference against window): fails when even the lower bound of its
    cross-validated AUROC is above ``max_auc``: the window's rows can be told from the training rows."""

    kind: Literal["joint_drift"]
    max_auc: float = Field(default=0.6, gt=0.5, lt=1)
    action: Literal["warn", "act"] = "warn"


Policy = Annotated[
    AbsolutePolicy
    | RelativeDropPolicy
    | RelativeRisePolicy
    | WilsonPolicy
    | BoundPolicy
    | MinLabelledPolicy
    | DriftPolicy
    | EstimatedPolicy
    | SlicesPolicy
    | JointDriftPolicy,
    Field(discriminator="kind"),
]
#: Policy kinds (the discriminator tags, left out of error paths).
POLICY_KINDS = (
    "absolute",
    "relative_drop",
    "relative_rise",
    "wilson",
    "bound",
    "min_labelled",
    "drift",
    "estimated",
    "slices",
    "joint_drift",
)


class ThresholdConfig(Strict):
    policies: list[Policy] = Field(min_length=1)
    consecutive: int = Field(default=1, ge=1, le=100)
    cooldown: Duration = timedelta(hours=2)
    max_redeploys_per_day: int = Field(default=3, ge=0, le=100)


# -- retraining and deployment -------------------------------------------------------------
class RetrainConfig(Strict):
    lookback: Duration = timedelta(hours=2)
    min_rows: int = Field(default=200, ge=10)
    holdout_fraction: float = Field(default=0.3, gt=0, lt=1)
    min_improvement: float = Field(default=0.01, ge=0, le=1)
    """How much better the challenger must be on ``metric``: an absolute gain for a quality metric
    (accuracy 0.80 -> 0.81 is 0.01), a fraction of the champion's value for an error metric."""
    metric: MetricName | None = None
    """The champion/challenger metric (default: accuracy for a classifier, MAE for a regressor)."""
    strategy: StrategyConfig = StrategyConfig()
    """Which labelled rows the challenger learns from (``monitoring/config/retraining.py``)."""
    refit: bool = True
    """After the gate, refit the challenger on every selected row, the held-out ones included."""
    gate: GateConfig = GateConfig()
    """How the challenger must beat the champion (``margin``: by ``min_improvement``)."""
    contract: ContractConfig = ContractConfig()
    """The data contract the retraining rows must keep before any fit."""


class DeploymentConfig(Strict):
    cpu: float = Field(default=1, gt=0, le=64)
    memory: float = Field(default=2, gt=0, le=512)
    replicas: int = Field(default=1, ge=1, le=16)
    runtime_identifier: str | None = None
    build_timeout: Duration = timedelta(minutes=15)
    deploy_timeout: Duration = timedelta(minutes=15)
    poll_interval: Duration = timedelta(seconds=5)


class LifecycleConfig(Strict):
    """Experiments and the model registry (CML's MLflow; the local workspace's own server)."""

    experiments: Literal["auto", "on", "off"] = "auto"
    """Log every training as an MLflow run; ``auto``: when ``MLFLOW_TRACKING_URI`` is set."""
    tracking_errors: Literal["fail", "continue"] = "fail"
    """A tracking server that fails a training's logging: fail the run (exit 3) or go on unlogged."""
    builds: Literal["file", "registry"] = "file"
    """Build from the artifact directory (``file``) or from a registered model version (``registry``)."""
    registered_model: str | None = Field(default=None, min_length=1, max_length=200)
    """The registered model of ``builds: registry`` (default: ``model.name``)."""

    @model_validator(mode="after")
    def _registry_needs_runs(self) -> LifecycleConfig:
        if self.builds == "registry" and (self.experiments == "off" or self.tracking_errors == "continue"):
            raise ValueError(
                "builds: registry registers each model from its experiment run: it needs experiments "
                "auto or on and tracking_errors: fail"
            )
        return self


# -- jobs, alerts and platform -------------------------------------------------------------
EMAIL = re.compile(r"^[^@\s,;<>\"']+@[^@\s,;<>\"']+$")
#: Decisions and redeploy outcomes the webhook can announce.
WebhookEvent = Literal["breach", "suppressed", "deployed", "rejected", "failed"]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = get_args(WebhookEvent)
ENV_VAR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def email_list(value: list[str] | None) -> list[str] | None:
    """Recipients as given (duplicates dropped); each must look like ``name@domain``."""
    if value is None:
        return None
    bad = [v for v in value if not EMAIL.match(v)]
    if bad:
        raise ValueError(f"not an email address: {', '.join(map(repr, bad))} (one address per list item)")
    return list(dict.fromkeys(value))


Emails = Annotated[list[str], AfterValidator(email_list)]


class JobSpec(Strict):
    name: str = Field(min_length=1, max_length=200)
    script: InsidePath = Field(min_length=1)
    parent: str | None = None
    schedule: str | None = None
    arguments: str = ""
    cpu: float = Field(default=1, gt=0)
    memory: float = Field(default=2, gt=0)
    timeout: int = Field(default=3600, ge=0)
    environment: dict[str, str] = {}
    alert_emails: Emails | None = None
    """Emailed by CML when this job fails or times out; unset: ``jobs.alert_emails``; ``[]``: nobody."""


class JobsConfig(Strict):
    trigger: Literal["chain", "api"] = "chain"
    timezone: str = "UTC"
    runtime_identifier: str | None = None
    alert_emails: Emails = []
    """Emailed by CML when any job fails or times out (a job's own ``alert_emails`` replaces this)."""
    graph: list[JobSpec] = Field(min_length=1)
    """Unset: the standard four-job chain (``PipelineConfig`` fills it in: ``graph_rules.default_graph``)."""

    def standalone_scripts(self) -> tuple[str, ...]:
        """Scripts that may have neither parent nor schedule: redeploy, when evaluate starts it (``api``)."""
        return (REDEPLOY_SCRIPT,) if self.trigger == "api" else ()

    def recipients(self, job: JobSpec) -> list[str]:
        """Who CML emails when ``job`` fails or times out."""
        return self.alert_emails if job.alert_emails is None else job.alert_emails

    @model_validator(mode="after")
    def _valid_graph(self) -> JobsConfig:
        problems = graph_problems(self.graph, standalone=self.standalone_scripts())
        redeploy = [j for j in self.graph if j.script == REDEPLOY_SCRIPT]
        if self.trigger == "api" and redeploy and redeploy[0].parent:
            problems.append(
                f"job {redeploy[0].name!r}: with trigger 'api' the redeploy job must have no parent "
                "(evaluate_thresholds starts it through the API)"
            )
        if self.trigger == "chain" and redeploy and not redeploy[0].parent:
            problems.append(
                f"job {redeploy[0].name!r}: with trigger 'chain' the redeploy job needs a parent "
                "(the evaluate_thresholds job)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


class WebhookConfig(Strict):
    url_env: str | None = None
    """Environment variable holding the webhook URL (a secret); unset: no webhook."""
    events: list[WebhookEvent] = list(WEBHOOK_EVENTS)
    timeout: Duration = timedelta(seconds=5)
    """Timeout of one post."""
    budget: Duration = timedelta(seconds=15)
    """Time all tries of one message may take together; then the job goes on without it."""
    attempts: int = Field(default=3, ge=1, le=10)

    @field_validator("url_env")
    @classmethod
    def _variable_name(cls, v: str | None) -> str | None:
        if v is not None and not ENV_VAR_NAME.match(v):
            raise ValueError(f"{v!r} is not an environment variable name (the URL itself never goes in config)")
        return v

    @model_validator(mode="after")
    def _positive(self) -> WebhookConfig:
        if self.timeout.total_seconds() <= 0 or self.budget.total_seconds() <= 0:
            raise ValueError("timeout and budget must be positive durations")
        return self


class AlertsConfig(Strict):
    webhook: WebhookConfig = WebhookConfig()


class RetryConfig(Strict):
    attempts: int = Field(default=5, ge=1, le=20)
    initial: Duration = timedelta(seconds=0.5)
    maximum: Duration = timedelta(seconds=20)
    jitter: Duration = timedelta(seconds=0.5)


class LocalConfig(Strict):
    workspace_dir: InsidePath = ".cml-local"
    metrics_url: Annotated[str | None, AfterValidator(sqlite_path_inside)] = None
    """Metrics store URL; default ``sqlite:///<workspace_dir>/metrics.db`` (``metrics_store_url``)."""
    busy_timeout: Duration = timedelta(seconds=30)
    build_max_mb: float = Field(default=500, gt=0)
    """The most a model build copies of the project, in MB (workspaces, virtualenvs, state stores
    and caches left out); a larger project fails its build, naming its largest paths."""

    @property
    def metrics_store_url(self) -> str:
        """The metrics store the local workspace keeps: ``metrics_url``, else the workspace's own file
        (``cmlbase.metrics_store.default_url``: the workspace, ``localcml``, makes its default there too,
        from the resolved directory)."""
        return self.metrics_url or metrics_store.default_url(self.workspace_dir)


class PlatformConfig(Strict):
    kind: Literal["local", "cml"] = "local"
    project_name: str = "cml-monitor"
    request_timeout: Duration = timedelta(seconds=30)
    retry: RetryConfig = RetryConfig()
    local: LocalConfig = LocalConfig()


class StateConfig(Strict):
    url: Annotated[str, AfterValidator(sqlite_path_inside)] = "sqlite:///var/state.db"
    artifacts_dir: InsidePath = "var/models"
    busy_timeout: Duration = timedelta(seconds=30)
    """How long a job waits for a lock another process holds on the state store (or for the
    window-results lease) before it gives up with exit 9 (or 6 for the lease)."""
    backup_every: Duration = timedelta(days=1)
    """The first successful job run once the newest backup is this old writes a new one
    (``<store dir>/backups/``); ``0s``: never."""
    backup_keep: int = Field(default=7, ge=1, le=1000)
    """Stamped backups kept; older ones are removed after a new one is written."""

    @field_validator("busy_timeout")
    @classmethod
    def _positive_wait(cls, v: timedelta) -> timedelta:
        if v.total_seconds() <= 0:
            raise ValueError("must be a positive duration")
        return v

    @field_validator("backup_every")
    @classmethod
    def _not_negative(cls, v: timedelta) -> timedelta:
        if v.total_seconds() < 0:
            raise ValueError("must not be negative (0s: never)")
        return v


class DashboardConfig(Strict):
    """The live dashboard: a CML Application that ``graph apply`` creates or updates with the jobs."""

    enabled: bool = True
    name: str | None = Field(default=None, min_length=1, max_length=200)
    """The application's name (default ``<model name> dashboard``)."""
    subdomain: str | None = Field(default=None, pattern=r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
    """The application's host name part, ``https://<subdomain>.<CML domain>/`` (default: from the model name)."""
    script: InsidePath = "apps/dashboard.py"
    cpu: float = Field(default=1, gt=0, le=16)
    memory: float = Field(default=2, gt=0, le=64)
    max_points: int = Field(default=600, ge=50, le=5000)
    """Most points a chart draws; more windows are grouped into equal-time buckets."""


class PipelineConfig(Strict):
    model: ModelConfig
    scenario: ScenarioConfig = ScenarioConfig()
    windows: WindowConfig = WindowConfig()
    thresholds: ThresholdConfig
    retraining: RetrainConfig = RetrainConfig()
    deployment: DeploymentConfig = DeploymentConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    jobs: JobsConfig
    """Unset, or without ``graph``: the standard chain is filled in before validation (``_default_graph``)."""
    alerts: AlertsConfig = AlertsConfig()
    platform: PlatformConfig = PlatformConfig()
    state: StateConfig = StateConfig()
    dashboard: DashboardConfig = DashboardConfig()
    data: DataConfig = DataConfig()
    ground_truth: GroundTruthConfig | None = None
    slices: SlicesConfig | None = None
    """Segments of the traffic judged one by one (a ``slices`` policy judges them)."""

    @model_validator(mode="before")
    @classmethod
    def _default_graph(cls, data: Any) -> Any:
        """No ``jobs.graph`` (or no ``jobs``): the standard chain, headed by the ground-truth job when
        ``ground_truth`` is configured, else by simulate_traffic; redeploy as ``jobs.trigger`` says."""
        if not isinstance(data, dict):
            return data
        jobs = data.get("jobs")
        jobs = {} if jobs is None else jobs
        if not isinstance(jobs, dict) or jobs.get("graph") is not None:
            return data
        head = GROUND_TRUTH_SCRIPT if data.get("ground_truth") is not None else SIMULATE_TRAFFIC_SCRIPT
        return {**data, "jobs": {**jobs, "graph": default_graph(head, str(jobs.get("trigger", "chain")))}}

    @model_validator(mode="after")
    def _cross_field(self) -> PipelineConfig:
        label = self.model.label
        problems = data_problems(self.data, self.model.task, self.model.classes, label.mapping, self.retraining.metric)
        if problems:
            raise ValueError("\n".join(problems))  # each names its key: parse_config lists them one by one
        if self.ground_truth is None and any(j.script == GROUND_TRUTH_SCRIPT for j in self.jobs.graph):
            raise ValueError(
                f"ground_truth: jobs.graph runs {GROUND_TRUTH_SCRIPT} but the config has no ground_truth "
                "section (where labels come from and how they join predictions)"
            )
        if self.windows.label_horizon < self.scenario.label_delay:
            raise ValueError(
                "windows.label_horizon must be at least scenario.label_delay, "
                "or labels arriving late would never be counted"
            )
        found = [
            metric_task_problem(p.metric, self.model.task, f"thresholds.policies[{i}].metric")
            for i, p in enumerate(self.thresholds.policies)
            if hasattr(p, "metric")
        ] + [
            metric_task_problem(m, self.model.task, f"thresholds.policies[{i}].metrics")
            for i, p in enumerate(self.thresholds.policies)
            for m in getattr(p, "metrics", ())
        ]
        problems = [p for p in found if p]
        problems += self.slices.problems(self.model) if self.slices is not None else []
        if any(p.kind == "slices" for p in self.thresholds.policies) and self.slices is None:
            problems.append("thresholds.policies: a slices policy needs the slices section (slices.by)")
        if problems:
            raise ValueError("\n".join(problems))  # parse_config lists each, with its key
        return self


# -- loading -------------------------------------------------------------------------------
def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item in (*POLICY_KINDS, *SOURCE_KINDS):
            continue  # the discriminator tag pydantic inserts into union paths
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def parse_config(data: object, source: str = "<config>") -> PipelineConfig:
    """Validate an already-parsed mapping.

    Raises:
        ConfigError: listing every problem as ``source: dotted.path: message``.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key (not allowed here)"
            if not err["loc"] and _KEYED.match(msg):  # cross-field problems name their own keys
                problems += [f"{source}: {line}" for line in msg.split("\n")]
                continue
            problems.append(f"{source}: {_loc(err['loc'])}: {msg}")
        raise ConfigError(problems) from None


def load_config(path: str | os.PathLike[str] | None = None) -> PipelineConfig:
    """Load and validate the pipeline YAML (``$CML_MONITOR_CONFIG`` or config/pipeline.yaml).

    Raises:
        ConfigError: the file is missing, is not YAML, or fails validation.
    """
    path = Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror or exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}: not valid YAML at {where}: {problem}") from None
    return parse_config(data, str(path))
