"""Slices: the segments of traffic whose metrics are judged one by one (``slices:`` in the config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitoring.config.model_spec import ModelConfig


class SliceBy(BaseModel):
    """One feature that cuts the traffic into slices: a categorical one by its values, a numeric one by bins."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    feature: str = Field(min_length=1)
    values: list[str] | None = None
    """A categorical feature's values, one slice each (unset: every value with at least ``min_rows`` rows)."""
    bins: list[float] | None = None
    """A numeric feature's inner edges, increasing: ``[12, 24]`` gives ``< 12``, ``12..24``, ``>= 24``."""

    @model_validator(mode="after")
    def _one_way(self) -> SliceBy:
        if self.values is not None and self.bins is not None:
            raise ValueError(f"slice by {self.feature!r}: set values (categorical) or bins (numeric), not both")
        if self.bins is not None and (not self.bins or any(b >= a for a, b in zip(self.bins[1:], self.bins))):
            raise ValueError(f"slice by {self.feature!r}: bins must be one or more increasing numbers")
        if self.values is not None and not self.values:
            raise ValueError(f"slice by {self.feature!r}: values must name at least one value")
        return self


class SlicesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    by: list[SliceBy] = Field(min_length=1)
    min_rows: int = Field(default=50, ge=5)
    """Fewest labelled rows of a slice in a window (and in the reference) for it to be judged."""

    def problems(self, model: ModelConfig) -> list[str]:
        """What does not fit the model spec: an unknown feature, bins on a categorical one, none on a numeric one."""
        kinds = model.kinds
        out = []
        for i, s in enumerate(self.by):
            key = f"slices.by[{i}]"
            kind = kinds.get(s.feature)
            if kind is None:
                out.append(f"{key}.feature: {s.feature!r} is not a model feature ({', '.join(kinds)})")
            elif kind == "numeric" and s.bins is None:
                out.append(f"{key}.bins: {s.feature!r} is numeric: give its bins (inner edges)")
            elif kind == "categorical" and s.bins is not None:
                out.append(f"{key}.bins: {s.feature!r} is categorical: give values, or none for every value")
        return out
