"""The data contract: learned from training rows, each rule fires, it blocks a retraining, and it is edited as YAML."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from monitoring.app.cli import main
from monitoring.app.wiring import offline_context
from monitoring.config.pipeline import load_config
from monitoring.core.errors import EXIT_CONTRACT, ContractError, DataError
from monitoring.domain.data.contract import Contract, check, learn
from monitoring.workflows.contract_check import enforce_contract, write_contract
from tests.domain import mixed
from tests.project import make_project

BINARY = mixed.spec()
REGRESSION = mixed.spec("regression")


@pytest.fixture(scope="module")
def trained():
    frame = mixed.frame(2000, np.random.default_rng(1), BINARY)
    return frame, learn(frame, BINARY)


def fresh(n: int = 500, seed: int = 2):
    return mixed.frame(n, np.random.default_rng(seed), BINARY)


def rules(violations) -> set[tuple[str, str]]:
    return {(v.column, v.rule) for v in violations}


def test_rows_like_the_training_rows_keep_the_contract(trained):
    _, contract = trained
    assert check(fresh(), contract) == []


def test_each_rule_fires_naming_its_column(trained):
    _, contract = trained
    rows = fresh()
    assert rules(check(rows.drop(columns="charges"), contract)) == {("charges", "column present")}
    holes = rows.copy()
    holes.loc[: len(rows) // 2, "tenure"] = np.nan  # a feed that starts sending nulls
    assert rules(check(holes, contract)) == {("tenure", "missing share")}
    cents = rows.assign(charges=rows["charges"] * 100)  # a unit change: dollars to cents
    assert rules(check(cents, contract)) == {("charges", "share out of range")}
    text = rows.assign(tenure=rows["tenure"].map(lambda v: f"{v} months"))
    assert rules(check(text, contract)) == {("tenure", "type")}
    renamed = rows.assign(contract=rows["contract"].map({"month": "monthly", "year": "year", "two_year": "two_year"}))
    assert ("contract", "share of unseen categories") in rules(check(renamed, contract))
    flipped = rows.assign(target=np.where(rows["target"] == "Yes", "No", "Yes"))
    shifted = check(flipped[flipped["target"] == "Yes"], contract)
    assert rules(shifted) == {("target", "share of class Yes"), ("target", "share of class No")}
    assert check(flipped[flipped["target"] == "Yes"], contract, with_label=False) == []


def test_a_regressors_label_has_a_range():
    frame = mixed.frame(1000, np.random.default_rng(3), REGRESSION)
    contract = learn(frame, REGRESSION)
    assert check(frame, contract) == []
    assert rules(check(frame.assign(target=frame["target"] * 1000), contract)) == {("target", "share out of range")}


def test_a_contract_is_written_as_yaml_read_back_and_refused_when_malformed(trained):
    _, contract = trained
    again = Contract.from_dict(yaml.safe_load(yaml.safe_dump(contract.to_dict())), "f")
    assert again == contract
    with pytest.raises(DataError, match="f: not a data contract"):
        Contract.from_dict({"features": [{"name": "x"}]}, "f")


def test_retraining_rows_that_break_the_contract_block_the_retraining_with_exit_10(tmp_path):
    """The telco scenario's contract learned from data.training; the edited file is read from retraining.contract."""
    config = make_project(tmp_path)
    root = tmp_path
    assert main(["contract", "--project-root", str(root), "--config", str(config)]) == 0
    written = config.parent / "telco-cell-tower-failure.contract.yaml"
    assert written.is_file() and written.read_text().startswith("# The data contract of")
    cfg = load_config(config)
    ctx = offline_context(cfg, root)
    from monitoring.workflows.retrain import initial_frame

    rows = initial_frame(ctx).iloc[:400].copy()
    enforce_contract(ctx, rows)  # keeps it
    label = cfg.model.label.name
    enforce_contract(ctx, rows.assign(**{label: rows[label].max()}))  # one class only: a shift to retrain on
    rows.loc[:, "iot_signal_2"] = np.nan
    with pytest.raises(ContractError, match="iot_signal_2: missing share 1.0") as caught:
        enforce_contract(ctx, rows)
    assert caught.value.exit_code == EXIT_CONTRACT == 10
    assert "iot_signal_2" in caught.value.action and "missing share" in caught.value.action
    # an edited contract file is what is checked: allowing every value missing lets the rows through
    data = yaml.safe_load(written.read_text())
    next(f for f in data["features"] if f["name"] == "iot_signal_2")["max_missing"] = 1.0
    written.write_text(yaml.safe_dump(data))
    relaxed = cfg.model_copy(
        update={
            "retraining": cfg.retraining.model_copy(
                update={"contract": cfg.retraining.contract.model_copy(update={"path": "config/" + written.name})}
            )
        }
    )
    enforce_contract(offline_context(relaxed, root), rows)
    off = cfg.model_copy(
        update={
            "retraining": cfg.retraining.model_copy(
                update={"contract": cfg.retraining.contract.model_copy(update={"enforce": False})}
            )
        }
    )
    enforce_contract(offline_context(off, root), rows)
    assert write_contract(ctx, tmp_path / "other" / "c.yaml").is_file()
