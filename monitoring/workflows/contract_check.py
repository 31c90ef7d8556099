"""The data contract at work: read or learned, written for editing, and kept by retraining rows before any fit."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import yaml

from monitoring.core.errors import ContractError, DataError
from monitoring.core.logs import KV
from monitoring.domain.data.contract import Contract, check, described, learn
from monitoring.workflows.context import Training
from monitoring.workflows.retrain import initial_frame

log = logging.getLogger(__name__)

#: The rule of a class share that moved: a prior shift is what retraining answers, so it only warns.
LABEL_SHIFT = "share of class"
#: The file ``cml-monitor contract`` writes beside the config: ``<config dir>/<model>.contract.yaml``.
SUFFIX = ".contract.yaml"
HEADER = (
    "# The data contract of {model}, learned from data.training by `cml-monitor contract`.\n"
    "# Edit the limits to what your data may hold; set retraining.contract.path to this file.\n"
    "# Rules: max_missing (share), low/high with max_out_of_range (share of values outside),\n"
    "# categories with max_unseen (share of values in other categories), label_shares with max_label_shift.\n"
)


def contract_of(ctx: Training) -> tuple[Contract, str]:
    """The configured contract file, or one learned from ``data.training``; and where it came from.

    Raises:
        DataError: the file cannot be read or is not a contract.
    """
    path = ctx.cfg.retraining.contract.path
    if path is None:
        return learn(initial_frame(ctx), ctx.cfg.model), "learned from data.training"
    file = ctx.project_root / path
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise DataError(f"retraining.contract.path {path}: cannot read it ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"retraining.contract.path {path}: expected a mapping (features, label)")
    return Contract.from_dict(data, f"retraining.contract.path {path}"), path


def write_contract(ctx: Training, out: Path) -> Path:
    """Learn the contract from ``data.training`` and write it as YAML to ``out``."""
    contract = learn(initial_frame(ctx), ctx.cfg.model)
    text = HEADER.format(model=ctx.cfg.model.name) + yaml.safe_dump(contract.to_dict(), sort_keys=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out


def enforce_contract(ctx: Training, rows: pd.DataFrame) -> None:
    """Check retraining rows against the contract before any fit (``retraining.contract.enforce``).

    Raises:
        ContractError: naming each broken rule's column and rule (exit 10); nothing is fitted.
    """
    if not ctx.cfg.retraining.contract.enforce or rows.empty:
        return
    contract, source = contract_of(ctx)
    found = check(rows, contract)
    shifted = [v for v in found if v.rule.startswith(LABEL_SHIFT)]
    if shifted:  # a drift to retrain on (more churners), not broken data: reported, never blocking
        log.warning("the label's class shares moved %s", KV(source=source, shares=described(shifted)))
    violations = [v for v in found if not v.rule.startswith(LABEL_SHIFT)]
    if not violations:
        return
    log.warning("retraining rows break the data contract %s", KV(source=source, violations=len(violations)))
    error = ContractError(
        f"{len(rows)} labelled retraining rows break the data contract ({source}): {described(violations)}; "
        "nothing was fitted and the champion keeps serving"
    )
    first = violations[0]
    error.action = (
        f"check the feed of column {first.column!r} (rule: {first.rule}); if the change is real, edit the contract "
        "(`cml-monitor contract` writes one to edit, then set retraining.contract.path) and re-run redeploy"
    )
    raise error
