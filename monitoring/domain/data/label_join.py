"""Joining ground truth to logged predictions: the key index, label values by the spec, and the tally of misses."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring.config.model_spec import ModelConfig
from monitoring.domain.data.sources.schema import text_of
from monitoring.domain.records.values import number_text

#: Why a label was not posted (each kind is counted in the VERDICT and sampled in the report).
MISSES = ("unknown_key", "too_old", "duplicate", "conflicting", "bad_label", "bad_row")
MISS_MEANING = {
    "unknown_key": "no prediction with this key within the lookback (nor in the stale scan before it)",
    "too_old": "the key's predictions are all older than the lookback",
    "duplicate": "the prediction already has this label (a re-run, an overlapping file, a repeated row)",
    "conflicting": "the prediction already has another label; the first one stays",
    "bad_label": "the label is not one of model.label.classes (nor mapped to one), or not a finite number",
    "bad_row": "the key, the label or the event time is missing or unreadable",
}


@dataclass(frozen=True)
class Hit:
    """The prediction a key resolves to."""

    uuid: str
    deployment_crn: str
    start_ms: int


def record_key(record: Mapping[str, Any], key: str, features_key: str) -> str | None:
    """The key of one read_metrics record as text: its uuid, or the value the predict function tracked.

    The value is looked for among the record's metrics, then among its input features.
    """
    if key == "uuid":
        return str(record.get("predictionUuid") or "") or None
    metrics = record.get("metrics")
    if not isinstance(metrics, Mapping):
        return None
    value = metrics.get(key)
    if value is None and isinstance(metrics.get(features_key), Mapping):
        value = metrics[features_key].get(key)
    try:
        return text_of(value)
    except ValueError:
        return None


@dataclass
class PredictionIndex:
    """Key -> the prediction a label joins (the newest or oldest within the lookback); keys seen only earlier.

    Memory: one entry per distinct key in the lookback (plus one per key in the stale scan).
    """

    key: str
    features_key: str
    match: str = "newest"
    hits: dict[str, Hit] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)
    records: int = 0

    def add(self, records: Iterable[Mapping[str, Any]], deployment_crn: str, *, stale: bool = False) -> None:
        """Index one chunk of a deployment's records (aggregates and records without the key are skipped)."""
        newest = self.match == "newest"
        for record in records:
            uuid = record.get("predictionUuid")
            if not uuid:
                continue
            key = record_key(record, self.key, self.features_key)
            if key is None:
                continue
            self.records += 1
            if stale:
                self.stale.add(key)
                continue
            start = int(record.get("startTimeStampMs") or 0)
            known = self.hits.get(key)
            if known is None or (start > known.start_ms if newest else start < known.start_ms):
                self.hits[key] = Hit(str(uuid), deployment_crn, start)

    def find(self, key: str) -> tuple[Hit | None, str | None]:
        """The prediction of ``key``, or None and why (``unknown_key`` or ``too_old``)."""
        hit = self.hits.get(key)
        if hit is not None:
            return hit, None
        return None, "too_old" if key in self.stale else "unknown_key"


def label_reader(spec: ModelConfig):
    """A function: raw label -> the value to post (a class of the spec, or a finite float), or None if unmappable.

    Classification: the raw value's text is looked up among ``label.mapping``'s keys, then the
    classes' own texts (``1``, ``"1"`` and ``"1.0"`` agree). Regression: a finite number.
    """
    if not spec.is_classifier:

        def number(raw: Any) -> float | None:
            try:
                value = float(raw)
            except (TypeError, ValueError):
                return None
            return value if math.isfinite(value) else None

        return number
    by_text: dict[str, Any] = {str(c): c for c in spec.classes}
    by_text.update(spec.label.mapping)

    def mapped(raw: Any) -> Any:
        try:
            text = text_of(raw)
        except ValueError:
            return None
        if text is None:
            return None
        if text in by_text:
            return by_text[text]
        try:  # "1.0" in a CSV names the class 1, as records read it
            return by_text.get(number_text(float(text)))
        except ValueError:
            return None

    return mapped


@dataclass
class Tally:
    """What happened to each label read: counts by outcome and a few samples of each miss."""

    samples: int
    counts: dict[str, int] = field(default_factory=dict)
    examples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def count(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    def miss(self, kind: str, where: str, **detail: Any) -> None:
        """Count one label not posted; keep it as a sample while there are fewer than ``samples``."""
        self.count(kind)
        kept = self.examples.setdefault(kind, [])
        if len(kept) < self.samples:
            kept.append({"where": where, **{k: _jsonable(v) for k, v in detail.items()}})

    def missed(self) -> int:
        return sum(self.counts.get(k, 0) for k in MISSES)

    def report(self) -> dict[str, Any]:
        """The report's body: counts of every kind, then what each miss means with its samples."""
        return {
            "counts": {k: self.counts.get(k, 0) for k in sorted(set(self.counts) | set(MISSES))},
            "misses": {
                k: {"count": self.counts.get(k, 0), "meaning": MISS_MEANING[k], "samples": self.examples.get(k, [])}
                for k in MISSES
            },
        }


def _jsonable(value: Any) -> Any:
    try:
        return text_of(value) if not isinstance(value, (str, int)) or isinstance(value, bool) else value
    except ValueError:
        return repr(value)
