"""analyze follows the model spec: --config, or flags for the task, the feature kinds and the classes."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import yaml
from sklearn import metrics as skm

from monitoring.app.analyze import DumpSpec, analyze_dump
from monitoring.app.cli import main
from monitoring.config.pipeline import load_config
from monitoring.core.errors import EXIT_CONFIG, ConfigError
from tests.domain.support import T0, prediction
from tests.project import REPO

HOUR = 3_600_000


def write_dump(tmp_path, records) -> str:
    path = tmp_path / "dump.json"
    path.write_text(json.dumps({"metrics": records}))
    return str(path)


def read_csv(path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def churn_dump(n: int = 240) -> list[dict]:
    rng = np.random.default_rng(3)
    out = []
    for i in range(n):
        late = i >= n // 2
        truth = ["yes", "no"][int(rng.random() < 0.7)]
        pred = ["Yes", "No"][int(rng.random() < (0.5 if late else 0.75))]
        rec = prediction(f"c{i}", T0 + i * (2 * HOUR // n), pred, label=truth, features={"tenure": float(i % 40)})
        rec["metrics"]["input_features"]["contract"] = rng.choice(["month", "year"] if not late else ["month", "week"])
        rec["metrics"].pop("probability")
        out.append(rec)
    return out


def churn_config(tmp_path) -> str:
    data = yaml.safe_load((REPO / "config" / "pipeline.yaml").read_text())
    data["model"] = {
        "name": "churn",
        "features": ["tenure", {"name": "contract", "kind": "categorical"}],
        "label": {"name": "Churn", "classes": ["No", "Yes"], "mapping": {"yes": "Yes", "no": "No"}},
    }
    data["thresholds"]["policies"] = [
        {"kind": "min_labelled", "min": 20},
        {"kind": "absolute", "metric": "f1", "min": 0.5},
    ]
    path = tmp_path / "churn.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_a_config_reads_text_classes_through_the_mapping_and_plots_the_headline_metric(tmp_path):
    records = churn_dump()
    spec = DumpSpec.from_config(load_config(churn_config(tmp_path)))
    summary = analyze_dump(write_dump(tmp_path, records), HOUR, tmp_path / "out", spec=spec)
    assert summary.classes == ["No", "Yes"] and summary.metric == "f1" and summary.ignored["bad_label"] == 0
    assert summary.png_path.endswith("f1.png") and (tmp_path / "out" / "f1.png").read_bytes()[:4] == b"\x89PNG"
    rows = read_csv(tmp_path / "out" / "windows.csv")
    assert list(rows[0])[5:] == ["accuracy", "precision", "recall", "f1"]  # no probabilities tracked
    y = [r["metrics"]["final_label"].capitalize() for r in records[:120]]
    p = [r["metrics"]["prediction"] for r in records[:120]]
    assert float(rows[0]["f1"]) == pytest.approx(skm.f1_score(y, p, pos_label="Yes"))
    y_all = [r["metrics"]["final_label"].capitalize() for r in records]
    p_all = [r["metrics"]["prediction"] for r in records]
    assert summary.overall == pytest.approx(skm.f1_score(y_all, p_all, pos_label="Yes"))
    assert "overall f1 " in summary.summary_line()


def test_flags_give_the_task_kinds_and_a_reference_for_drift(tmp_path):
    records = churn_dump()
    spec = DumpSpec.from_flags(categorical=["contract"], classes=["No", "Yes"])
    summary = analyze_dump(write_dump(tmp_path, records), HOUR, tmp_path / "out", spec=spec, reference_ms=HOUR)
    rows = read_csv(tmp_path / "out" / "windows.csv")
    assert {"psi_contract", "psi_tenure"} <= set(rows[0])
    assert (
        float(rows[0]["psi_contract"]) < 0.1 < 1.0 < float(rows[1]["psi_contract"])
    )  # "week": unseen in the first hour
    assert summary.ignored["bad_label"] == 120 * 2  # no mapping given: "yes" and "no" name no class
    assert summary.labelled == 0


def housing_dump(n: int = 200, zero_every: int = 0) -> list[dict]:
    """Two hours of a regressor's predictions; ``zero_every``: every such row's true value is 0."""
    rng = np.random.default_rng(4)
    out = []
    for i in range(n):
        price = 0.0 if zero_every and i % zero_every == 0 else float(rng.normal(450_000, 90_000))
        pred = price + float(rng.normal(0, 20_000 if i < n // 2 else 80_000))
        out.append(prediction(f"h{i}", T0 + i * (2 * HOUR // n), pred, label=price, features={"sqft": 1200.0}))
    return out


def test_regression_from_flags_writes_the_error_metrics_and_their_plot(tmp_path, capsys):
    dump = write_dump(tmp_path, housing_dump(zero_every=10))
    code = main(["analyze", dump, "--out", str(tmp_path / "out"), "--task", "regression", "--metric", "rmse"])
    assert code == 0
    line = capsys.readouterr().out
    assert "overall rmse " in line and "rmse.png" in line
    rows = read_csv(tmp_path / "out" / "windows.csv")
    assert list(rows[0])[5:] == ["mae", "rmse", "mape", "zero_targets", "r2", "bias"]
    assert [r["zero_targets"] for r in rows] == ["10", "10"]  # rows 0, 10, ... 190: ten an hour, left out of MAPE
    assert float(rows[0]["mae"]) < float(rows[1]["mae"])  # the error rises in the second hour
    assert (tmp_path / "out" / "rmse.png").read_bytes()[:4] == b"\x89PNG"


def test_flags_that_contradict_the_task_or_the_config_are_config_errors(tmp_path, capsys):
    with pytest.raises(ConfigError, match="--metric: 'accuracy' is a classification metric"):
        DumpSpec.from_flags(task="regression", metric="accuracy")
    dump = write_dump(tmp_path, housing_dump(10))
    config = churn_config(tmp_path)
    assert main(["analyze", dump, "--out", str(tmp_path), "--config", config, "--task", "regression"]) == EXIT_CONFIG
    assert "--config gives the model spec" in capsys.readouterr().err
