"""Config loading: every YAML in config/ and examples/ is valid; bad files list every problem with path and field."""

from pathlib import Path

import pytest
import yaml

from monitoring.config.pipeline import load_config, parse_config
from monitoring.core.errors import EXIT_CONFIG, ConfigError
from tests.project import MINIMAL

ROOT = Path(__file__).resolve().parents[2]


SHIPPED = sorted(
    p
    for p in [*(ROOT / "config").glob("*.yaml"), *(ROOT / "examples").glob("*/*.yaml")]
    if not p.name.endswith(".contract.yaml")  # data contracts (cml-monitor contract), not configs
)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_shipped_config_is_valid(path):
    cfg = load_config(path)
    assert cfg.model.features


def _base() -> dict:
    return yaml.safe_load((ROOT / "config/pipeline.yaml").read_text())


def test_every_problem_is_listed_with_file_and_field_path(tmp_path):
    data = _base()
    data["thresholds"]["policies"][1]["min"] = 1.5
    data["scenario"]["rows_per_cycle"] = "many"
    data["windows"]["bogus"] = 1
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert info.value.exit_code == EXIT_CONFIG
    assert any(
        p.startswith(f"{path}: thresholds.policies[1].min:") and "less than or equal to 1" in p for p in problems
    )
    assert any(p.startswith(f"{path}: scenario.rows_per_cycle:") for p in problems)
    assert any(p == f"{path}: windows.bogus: unknown key (not allowed here)" for p in problems)
    assert len(problems) == 3


def test_malformed_yaml_names_line_and_column(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model:\n  name: x\n  features: [a, b\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line \d+, column \d+"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the config file"):
        load_config(tmp_path / "nope.yaml")


def test_yaml_tags_are_not_executed(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)


def test_durations_accept_operator_forms_and_reject_nonsense():
    data = _base()
    data["scenario"]["label_delay"] = "45m"
    assert parse_config(data).scenario.label_delay.total_seconds() == 2700
    data["scenario"]["label_delay"] = "soon"
    with pytest.raises(ConfigError, match=r"scenario.label_delay: expected a duration such as 90s, 30m, 1h or 2d"):
        parse_config(data, "x.yaml")


def test_the_window_length_and_the_local_metrics_store_are_read_once_in_the_config():
    data = _base()
    data["windows"] = {**data.get("windows", {}), "length": "30m"}
    cfg = parse_config(data)
    assert cfg.windows.length_ms == 30 * 60_000 and parse_config(_base()).windows.length_ms == 3_600_000
    local = cfg.platform.local
    assert local.metrics_url is None and local.metrics_store_url == "sqlite:///.cml-local/metrics.db"
    data["platform"] = {"local": {"workspace_dir": "ws/here", "metrics_url": None}}
    assert parse_config(data).platform.local.metrics_store_url == "sqlite:///ws/here/metrics.db"
    data["platform"]["local"]["metrics_url"] = "sqlite:///m/metrics.db"
    assert parse_config(data).platform.local.metrics_store_url == "sqlite:///m/metrics.db"


def test_label_horizon_shorter_than_label_delay_is_rejected():
    data = _base()
    data["windows"]["label_horizon"] = "10m"
    with pytest.raises(ConfigError, match="label_horizon must be at least scenario.label_delay"):
        parse_config(data)


def test_job_graph_rules_are_checked_at_load():
    data = _base()
    graph = data["jobs"]["graph"]
    graph[1]["schedule"] = "0 * * * *"
    graph[2]["parent"] = "nobody"
    graph.append(dict(graph[0]))
    with pytest.raises(ConfigError) as info:
        parse_config(data, "g.yaml")
    text = str(info.value)
    assert "a dependent job cannot have a schedule" in text
    assert "parent 'nobody' is not in the graph" in text
    assert "duplicate name" in text


def test_cycle_in_job_graph_is_rejected():
    data = _base()
    graph = data["jobs"]["graph"]
    graph[0]["parent"] = graph[3]["name"]
    graph[0].pop("schedule")
    with pytest.raises(ConfigError, match="dependency cycle"):
        parse_config(data)


def test_api_trigger_requires_redeploy_without_parent():
    data = _base()
    data["jobs"]["trigger"] = "api"
    with pytest.raises(ConfigError, match="with trigger 'api' the redeploy job must have no parent"):
        parse_config(data)
    data["jobs"]["graph"][3].pop("parent")
    assert parse_config(data).jobs.trigger == "api"


def test_a_config_without_jobs_graph_gets_the_standard_chain(tmp_path):
    """A new user's config need not copy ``jobs.graph`` from an example: the four-job chain is the default."""
    path = tmp_path / "minimal.yaml"
    path.write_text(MINIMAL)
    graph = load_config(path).jobs.graph
    chain = [(j.name, j.script, j.parent, j.schedule) for j in graph]
    assert chain == [
        ("cml-monitor simulate_traffic", "jobs/simulate_traffic.py", None, "0 * * * *"),
        ("cml-monitor compute_accuracy", "jobs/compute_accuracy.py", "cml-monitor simulate_traffic", None),
        ("cml-monitor evaluate_thresholds", "jobs/evaluate_thresholds.py", "cml-monitor compute_accuracy", None),
        ("cml-monitor redeploy", "jobs/redeploy.py", "cml-monitor evaluate_thresholds", None),
    ]
    assert graph == parse_config(_base()).jobs.graph  # exactly the shipped config's graph (redeploy memory 4 too)
    data = yaml.safe_load(MINIMAL)
    data["jobs"] = {"trigger": "api", "alert_emails": ["oncall@example.com"]}  # jobs given, graph not
    cfg = parse_config(data)
    assert cfg.jobs.graph[3].parent is None and cfg.jobs.alert_emails == ["oncall@example.com"]
    data = yaml.safe_load(MINIMAL)
    data["ground_truth"] = {"source": {"kind": "csv", "path": "labels/*.csv", "time_column": "at"}, "key": "ride_id"}
    head, compute, *_ = parse_config(data).jobs.graph
    assert (head.name, head.script, head.schedule) == ("cml-monitor ground_truth", "jobs/ground_truth.py", "0 * * * *")
    assert compute.parent == "cml-monitor ground_truth"
    data["jobs"] = {"graph": []}  # an explicit empty graph is still a mistake
    with pytest.raises(ConfigError, match="jobs.graph: List should have at least 1 item"):
        parse_config(data)


def test_unknown_policy_kind_is_rejected():
    data = _base()
    data["thresholds"]["policies"].append({"kind": "vibes", "min": 0.5})
    with pytest.raises(ConfigError, match=r"thresholds.policies\[3\]"):
        parse_config(data)
