"""Bad model specs and data stop the first training with a clear error, and nothing is written (issue 10, item 8).

Each case is the churn example (its own config, data and trainer, copied into a project) with one
thing wrong, run through ``bootstrap`` on a live local workspace: the error names the key, the
source, the column or the row; no artifact is saved, no model is created on the platform and
the state store records no deployment.
"""

from __future__ import annotations

import dataclasses

import pytest
import yaml

from monitoring.config.pipeline import load_config
from monitoring.core.errors import ConfigError, DataError
from monitoring.workflows.bootstrap import bootstrap
from tests.project import REPO, merge

SOURCE = "data.training (csv examples/churn/data/telco_customer_churn.csv)"
NO_PREDICT = "def train(frame, spec):\n    return 'a fitted model'\n"
#: The features of the demo's synthetic telco scenario, for a spec that is not its own.
TELCO_NAMES = {"features": ["tenure", "MonthlyCharges", "TotalCharges", "SeniorCitizen"], "label": "Churn"}


def features_plus(*extra: dict) -> dict:
    data = yaml.safe_load((REPO / "examples/churn/pipeline.yaml").read_text())
    return {"model": {"features": data["model"]["features"] + list(extra)}}


def kinds_changed(name: str, kind: str) -> dict:
    features = features_plus()["model"]["features"]
    return {"model": {"features": [{**f, "kind": kind} if f["name"] == name else f for f in features]}}


CASES = {
    "a feature the data lacks": (
        features_plus({"name": "monthly_fee", "kind": "numeric"}),
        DataError,
        [SOURCE, "monthly_fee"],
    ),
    "text in a numeric feature": (
        kinds_changed("Contract", "numeric"),
        DataError,
        [SOURCE, "column 'Contract'", "of examples/churn/data/telco_customer_churn.csv", "expected a number"],
    ),
    "a trainer that returns no predict": (
        {"model": {"trainer": "examples.churn.no_predict:train"}},
        ConfigError,
        ["model.trainer 'examples.churn.no_predict:train'", "no predict method"],
    ),
    "label values outside the mapping": (
        {
            "model": {"label": {"name": "Churn", "classes": [0, 1], "mapping": {"no": 0, "yes": 1}}},
            "data": {"replay": {"drift": {"label": 1}}},
        },
        DataError,
        [SOURCE, "column 'Churn' (class label) holds 'Yes' at row ", "expected one of model.label.classes [0, 1]"],
    ),
    "the telco scenario's data for another spec": (
        {"model": {**TELCO_NAMES, "trainer": None}, "data": {"training": {"kind": "synthetic"}, "replay": None}},
        ConfigError,
        ["tenure, MonthlyCharges, TotalCharges, SeniorCitizen", "Churn"],
    ),
}


def config_with(pipeline, name: str, change: dict):
    data = yaml.safe_load((pipeline.root / "config/pipeline.yaml").read_text())
    data = merge(data, change)
    for section, key in (("model", "label"), ("data", "training")):  # replaced whole, not merged
        if key in change.get(section, {}):
            data[section][key] = change[section][key]
    path = pipeline.root / "config" / f"{name.replace(' ', '-')}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_config(path)


def test_bad_specs_and_data_fail_the_first_training_naming_the_culprit_and_write_nothing(make_pipeline):
    pipeline = make_pipeline(do_bootstrap=False, example="churn")
    (pipeline.root / "examples/churn/no_predict.py").write_text(NO_PREDICT)
    ctx = pipeline.ctx
    for name, (change, error, fragments) in CASES.items():
        cfg = config_with(pipeline, name, change)
        with pytest.raises(error) as info:
            bootstrap(dataclasses.replace(ctx, cfg=cfg))
        for fragment in fragments:
            assert fragment in str(info.value), (name, fragment, str(info.value))
        assert not list(ctx.artifacts_dir.rglob("*")), name
        assert ctx.platform.api.find_model(cfg.model.name) is None, name
        assert ctx.store.deployments(cfg.model.name) == [], name
    # the churn example itself trains and deploys on the same workspace
    assert bootstrap(ctx).status == "deployed"
    assert [p.name for p in (ctx.artifacts_dir / ctx.cfg.model.name).iterdir()] == ["v1"]


def test_a_regression_metric_on_a_classifier_is_a_config_error_naming_the_key(tmp_path):
    data = merge(yaml.safe_load((REPO / "examples/churn/pipeline.yaml").read_text()), {"retraining": {"metric": "mae"}})
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(
        ConfigError, match=r"retraining.metric: 'mae' is a regression metric, but model.task is classification"
    ):
        load_config(path)
