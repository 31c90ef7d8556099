"""A data contract learned from the training data: what a column may hold, checked on new rows.

The contract keeps, per feature: that it is present and of its kind, the largest share of
missing values, a numeric range (quantiles widened by a tolerance, with the share of values
allowed outside it) or a categorical domain (with the share of unseen categories allowed); and
for the label its class shares (classifier) or its range (regressor). ``check`` names each
violated rule with its column, the observed value and the limit. A contract is plain data: it
is written to and read from YAML, where a user may edit it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from monitoring.config.model_spec import ModelConfig
from monitoring.core.errors import DataError

#: Quantiles that bound a numeric range before the tolerance widens it.
LOW_Q, HIGH_Q = 0.005, 0.995


@dataclass(frozen=True)
class Tolerances:
    """How far new data may stray from the training data before a rule fires."""

    missing: float = 0.05
    """Missing share allowed above the training data's."""
    range_widen: float = 0.25
    """The quantile range is widened by this share of its span on each side."""
    out_of_range: float = 0.05
    """Share of values allowed outside the widened range."""
    unseen: float = 0.05
    """Share of values allowed in categories the training data never had."""
    label_shift: float = 0.2
    """Absolute change allowed in any class's share of the labels."""


@dataclass(frozen=True)
class ColumnRule:
    """What one column may hold (``low``/``high`` for numbers, ``categories`` for categories)."""

    name: str
    kind: str
    max_missing: float
    low: float | None = None
    high: float | None = None
    max_out_of_range: float | None = None
    categories: list[str] | None = None
    max_unseen: float | None = None


@dataclass(frozen=True)
class Contract:
    """The rules of the features and the label."""

    features: list[ColumnRule]
    label: ColumnRule
    label_shares: dict[str, float] = field(default_factory=dict)
    max_label_shift: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str) -> Contract:
        """Read a contract (as ``to_dict`` writes it, perhaps edited).

        Raises:
            DataError: naming ``where`` and the field, when the data is not a contract.
        """
        try:
            features = [ColumnRule(**rule) for rule in data["features"]]
            label = ColumnRule(**data["label"])
            shares = {str(k): float(v) for k, v in (data.get("label_shares") or {}).items()}
            return cls(features, label, shares, data.get("max_label_shift"))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise DataError(f"{where}: not a data contract ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class Violation:
    """A rule the data broke: the column, the rule, what was seen and the limit."""

    column: str
    rule: str
    observed: Any
    limit: Any

    def text(self) -> str:
        return f"{self.column}: {self.rule} {self.observed} (limit {self.limit})"


def _rule(name: str, kind: str, values: pd.Series, tol: Tolerances) -> ColumnRule:
    missing = float(values.isna().mean()) if len(values) else 0.0
    max_missing = round(min(1.0, missing + tol.missing), 4)
    if kind == "numeric":
        known = pd.to_numeric(values, errors="coerce").dropna()
        if known.empty:
            return ColumnRule(name, kind, max_missing)
        low, high = (float(q) for q in known.quantile([LOW_Q, HIGH_Q]))
        widen = (high - low) * tol.range_widen
        return ColumnRule(name, kind, max_missing, low - widen, high + widen, tol.out_of_range)
    categories = sorted({str(v) for v in values.dropna()})
    return ColumnRule(name, kind, max_missing, categories=categories, max_unseen=tol.unseen)


def learn(frame: pd.DataFrame, spec: ModelConfig, tolerances: Tolerances = Tolerances()) -> Contract:
    """The contract of ``frame`` (checked training rows: ``sources.schema.conform``)."""
    features = [_rule(name, spec.kinds[name], frame[name], tolerances) for name in spec.feature_names]
    y = frame[spec.label.name]
    if spec.is_classifier:
        shares = {str(k): round(float(v), 4) for k, v in y.astype(str).value_counts(normalize=True).items()}
        label = ColumnRule(spec.label.name, "categorical", 0.0, categories=sorted(shares), max_unseen=0.0)
        return Contract(features, label, shares, tolerances.label_shift)
    return Contract(features, _rule(spec.label.name, "numeric", y, tolerances))


def _numeric(values: pd.Series) -> pd.Series | None:
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        converted = pd.to_numeric(values, errors="coerce")
        return None if converted.notna().sum() < values.notna().sum() else converted
    return values


def _check_column(rule: ColumnRule, values: pd.Series) -> list[Violation]:
    out = []
    missing = float(values.isna().mean())
    if missing > rule.max_missing:
        out.append(Violation(rule.name, "missing share", round(missing, 4), rule.max_missing))
    known = values.dropna()
    if known.empty:
        return out
    if rule.kind == "numeric":
        numbers = _numeric(known)
        if numbers is None:
            return [*out, Violation(rule.name, "type", str(known.dtype), "numeric")]
        if rule.low is not None and rule.high is not None and rule.max_out_of_range is not None:
            outside = float(((numbers < rule.low) | (numbers > rule.high)).mean())
            if outside > rule.max_out_of_range:
                limit = f"{rule.max_out_of_range} outside {rule.low:.6g}..{rule.high:.6g}"
                out.append(Violation(rule.name, "share out of range", round(outside, 4), limit))
    elif rule.categories is not None and rule.max_unseen is not None:
        unseen = float((~known.astype(str).isin(set(rule.categories))).mean())
        if unseen > rule.max_unseen:
            out.append(Violation(rule.name, "share of unseen categories", round(unseen, 4), rule.max_unseen))
    return out


def check(frame: pd.DataFrame, contract: Contract, with_label: bool = True) -> list[Violation]:
    """Every rule ``frame`` breaks (an empty list: it keeps the contract).

    Args:
        frame: rows with the feature columns (and the label column when ``with_label``).
        contract: the contract.
        with_label: check the label's rules too (traffic rows have no label yet).
    """
    if frame.empty:
        return []
    rules = [*contract.features, *([contract.label] if with_label else [])]
    out = []
    for rule in rules:
        if rule.name not in frame.columns:
            out.append(Violation(rule.name, "column present", "absent", "present"))
            continue
        out.extend(_check_column(rule, frame[rule.name]))
    if with_label and contract.label_shares and contract.max_label_shift is not None and contract.label.name in frame:
        seen = frame[contract.label.name].dropna().astype(str).value_counts(normalize=True)
        for cls, share in contract.label_shares.items():
            now = float(seen.get(cls, 0.0))
            if abs(now - share) > contract.max_label_shift:
                limit = f"{share:.4g} +- {contract.max_label_shift}"
                out.append(Violation(contract.label.name, f"share of class {cls}", round(now, 4), limit))
    return out


def described(violations: list[Violation], shown: int = 3) -> str:
    """The first violations in one line, then ``+N more``."""
    head = "; ".join(v.text() for v in violations[:shown])
    return head + (f"; +{len(violations) - shown} more" if len(violations) > shown else "")
