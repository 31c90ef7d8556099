"""Joining ground truth to logged predictions: the key index, label values by the spec, and the tally of misses."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from monitoring.config.ground_truth import UUID_KEY
from monitoring.config.model_spec import ModelConfig
from monitoring.domain.data.sources.schema import text_of
from monitoring.domain.records.values import number_text

#: Why a label was not posted (each kind is counted in the VERDICT and sampled in the report).
MISSES = (
    "unknown_key",
    "too_old",
    "before_prediction",
    "future_dated",
    "duplicate",
    "conflicting",
    "bad_label",
    "bad_row",
)
MISS_MEANING = {
    "unknown_key": "no prediction with this key within the lookback (nor in the stale scan before it)",
    "too_old": "the key's predictions made before the outcome are all older than the lookback",
    "before_prediction": "the outcome's time is before every prediction of the key within the lookback: "
    "a label never joins a prediction made after its outcome",
    "future_dated": "the row is dated more than ground_truth.future_tolerance after the run: quarantined, "
    "never posted nor moving the watermark (fix its time at the source)",
    "duplicate": "the prediction already has this label, or a row with this key and time was posted "
    "(a re-run, a re-sent or overlapping export, a repeated row)",
    "conflicting": "the prediction already has another label; the first one stays",
    "bad_label": "the label is not one of model.label.classes (nor mapped to one), or not a finite number",
    "bad_row": "the key, the label or the event time is missing or unreadable, or the line is malformed "
    "(another number of fields than the header's)",
}


@dataclass(frozen=True, slots=True)
class Hit:
    """A prediction a key resolves to."""

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
    """Key -> the predictions made with it within the lookback; keys seen only earlier (the stale scan).

    A label joins the newest prediction of its key made at or before the outcome's time (``match:
    oldest``: the oldest), never a later one; with ``key: uuid`` the row names its prediction.

    Memory: one entry per prediction in the lookback that tracked a key (plus one per key in the stale scan).
    """

    key: str
    features_key: str
    match: str = "newest"
    hits: dict[str, list[Hit]] = field(default_factory=dict)
    stale: set[str] = field(default_factory=set)
    records: int = 0

    def add(self, records: Iterable[Mapping[str, Any]], deployment_crn: str, *, stale: bool = False) -> None:
        """Index one chunk of a deployment's records (aggregates and records without the key are skipped)."""
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
            hit = Hit(str(uuid), deployment_crn, int(record.get("startTimeStampMs") or 0))
            self.hits.setdefault(key, []).append(hit)

    @property
    def predictions(self) -> int:
        """Predictions indexed within the lookback."""
        return sum(len(h) for h in self.hits.values())

    def find(self, key: str, event_ms: int | None = None) -> tuple[Hit | None, str | None]:
        """The prediction a label of ``key`` with outcome time ``event_ms`` joins, or None and why.

        Returns:
            ``(hit, None)``; or ``(None, why)``: ``unknown_key``, ``too_old`` (the key's predictions
            before the outcome are older than the lookback) or ``before_prediction`` (the key's
            predictions in the lookback are all later than the outcome).
        """
        hits = self.hits.get(key, [])
        earlier = hits if event_ms is None or self.key == UUID_KEY else [h for h in hits if h.start_ms <= event_ms]
        if earlier:
            pick = max if self.match == "newest" else min
            return pick(earlier, key=lambda h: h.start_ms), None
        if key in self.stale:
            return None, "too_old"
        return None, "before_prediction" if hits else "unknown_key"


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
