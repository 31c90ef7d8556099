"""The model spec in config: the task, the features and their kinds, the label, the trainer, serving.

Everything downstream (records, windows, training, drift, serving, traffic, report, analyze)
follows this spec; nothing may assume the demo's four numeric signals. A plain list of feature
names means numeric features and a plain label name means the classes ``[0, 1]``, so the short
form of earlier configs stays valid.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from monitoring.core.paths import InsidePath

Task = Literal["classification", "regression"]
FeatureKind = Literal["numeric", "categorical"]
ClassValue = str | int
#: The classes of a classifier whose config names none.
DEFAULT_CLASSES: tuple[ClassValue, ...] = (0, 1)
_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FeatureSpec(_Strict):
    """One model input: its name in requests and data, and whether it is a number or a category."""

    name: str = Field(min_length=1, max_length=200)
    kind: FeatureKind = "numeric"


class LabelSpec(_Strict):
    """The ground truth: its column name, and for a classifier its classes and their raw spellings."""

    name: str = Field(min_length=1, max_length=200)
    classes: list[ClassValue] | None = None
    """Classification: the classes the model predicts, in order (default ``[0, 1]``). Regression: none."""
    positive: ClassValue | None = None
    """Binary classification: the class precision, recall and F1 are about (default: the last class)."""
    mapping: dict[str, ClassValue] = {}
    """Raw ground-truth values, as text, to a class: ``{"yes": "Yes", "1": "Yes"}``."""


class ModelConfig(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str = "Telco cell-tower failure classifier, monitored by cml-monitor"
    task: Task = "classification"
    features: list[FeatureSpec] = Field(min_length=1)
    label: LabelSpec
    trainer: str | None = None
    """``package.module:function(frame, spec) -> fitted estimator``; default: a built-in per task."""
    serving_file: InsidePath = "monitoring/serving/predict.py"
    serving_function: str = "predict"
    api_key_env: str = "CML_MONITOR_MODEL_API_KEY"
    """Environment variable holding the model API key (sent as Bearer) when auth is enabled."""
    auth_enabled: bool = True

    @field_validator("features", mode="before")
    @classmethod
    def _short_features(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"name": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("label", mode="before")
    @classmethod
    def _short_label(cls, value: object) -> object:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("trainer")
    @classmethod
    def _entry_point(cls, value: str | None) -> str | None:
        if value is not None and not _ENTRY_POINT.match(value):
            raise ValueError(f"{value!r} is not an entry point: expected 'package.module:function'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        names = self.feature_names
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"features: names must be unique, {doubled} appear more than once")
        if self.label.name in names:
            raise ValueError(f"label.name {self.label.name!r} is also a feature: the label cannot be an input")
        label = self.label
        if self.task == "regression":
            extra = [k for k in ("classes", "positive") if getattr(label, k) is not None]
            if extra or label.mapping:
                keys = ", ".join(f"label.{k}" for k in [*extra, *(["mapping"] if label.mapping else [])])
                raise ValueError(f"{keys}: a regression model has a numeric target, not classes")
            return self
        classes = self.classes
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"label.classes: a classifier needs at least two distinct classes, got {classes}")
        if label.positive is not None and label.positive not in classes:
            raise ValueError(f"label.positive: {label.positive!r} is not one of label.classes {classes}")
        unknown = sorted({str(v) for v in label.mapping.values() if v not in classes})
        if unknown:
            raise ValueError(f"label.mapping: maps to {unknown}, which are not in label.classes {classes}")
        return self

    # -- what the rest of the pipeline reads ----------------------------------------------------
    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def kinds(self) -> dict[str, FeatureKind]:
        """Feature name -> ``numeric`` or ``categorical``."""
        return {f.name: f.kind for f in self.features}

    @property
    def numeric_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    @property
    def classes(self) -> list[ClassValue]:
        """The classifier's classes in order ([] for regression)."""
        if self.task == "regression":
            return []
        return list(self.label.classes) if self.label.classes is not None else list(DEFAULT_CLASSES)

    @property
    def positive_class(self) -> ClassValue | None:
        """The positive class of a classifier (the last class unless configured); None for regression."""
        if self.task == "regression":
            return None
        return self.label.positive if self.label.positive is not None else self.classes[-1]

    @property
    def positive_index(self) -> int | None:
        """Index of the positive class of a binary classifier in ``classes``; None otherwise."""
        positive = self.positive_class
        return self.classes.index(positive) if positive is not None and len(self.classes) == 2 else None
