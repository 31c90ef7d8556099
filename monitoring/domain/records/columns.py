"""Where both decoding paths end: ``Columns`` (records as aligned arrays) and ``finish_columns`` (values read as the spec says)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from monitoring.core.errors import DataError
from monitoring.domain.records.rows import RawRows, all_finite, blank_unreadable, floats, nondecreasing, plain_pages
from monitoring.domain.records.values import (
    DEFAULT_CLASSES,
    Reading,
    class_indexes_of_floats,
    class_indexes_of_values,
    discover_classes,
)

if TYPE_CHECKING:
    import pandas as pd

    from monitoring.config.model_spec import ClassValue, ModelConfig


#: Names of the ``Columns.counts`` entries, all present (0 when nothing was ignored).
COUNT_NAMES = (
    "records",
    "aggregates",
    "malformed",
    "duplicate_uuid",
    "bad_timestamp",
    "missing_prediction",
    "bad_prediction",
    "bad_label",
    "missing_features",
    "non_finite",
)


@dataclass
class Columns:
    """Prediction records as aligned arrays, sorted by start time (one row per prediction uuid).

    Attributes:
        uuid: prediction uuids (object array of str).
        start_ms: request start times, epoch ms (int64).
        deployment_crn: deployment CRN of each record (object array of str; "" if absent).
        prediction: float64. A classifier's: the index of the predicted class in ``classes``,
            -1 for a value that names no class, NaN if absent or unreadable. A regressor's: the
            predicted number, NaN if absent or unreadable.
        label: float64, the delayed ground truth: a class index (a value that names no class is
            a bad label) or a regression target; NaN if unlabelled or unreadable.
        features: (n, k) float64 numeric features in ``feature_names`` order; NaN for missing
            or unreadable values.
        feature_names: the numeric features, the columns of ``features``.
        counts: what was skipped or blanked, keyed by ``COUNT_NAMES``: ``aggregates`` (records
            with ``predictionUuid == ""``), ``malformed`` (not a dict, no uuid, no metrics dict),
            ``duplicate_uuid`` (earlier copies dropped; the last wins), ``bad_timestamp`` (rows
            dropped), ``missing_prediction``, ``bad_prediction`` (unreadable: set to NaN),
            ``bad_label`` (unreadable or no class: set to NaN), ``missing_features`` /
            ``non_finite`` (rows with an absent / unreadable feature: text or an infinity in a
            numeric one, a dict or a list in any).
        latency_ms: ``endTimeStampMs - startTimeStampMs`` of each record, in ms (float64; NaN when
            the end is absent, unreadable, not finite or before the start). Defaults to all NaN.
        categories: categorical feature name -> object array of its values as text (None when
            missing or unreadable), in the spec's order.
        classes: the classes that ``prediction`` and ``label`` index; empty for a regressor.
        positive: index of the positive class of a binary classifier; None otherwise.
        proba: tracked probabilities, NaN where absent: a binary classifier's P(positive class)
            (n,), a multi-class one's (n, len(classes)); None when none were tracked.
        unreadable: rows with an unreadable feature (None when there are none).
    """

    uuid: np.ndarray
    start_ms: np.ndarray
    deployment_crn: np.ndarray
    prediction: np.ndarray
    label: np.ndarray
    features: np.ndarray
    feature_names: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)
    latency_ms: np.ndarray | None = None
    categories: dict[str, np.ndarray] = field(default_factory=dict)
    classes: tuple[ClassValue, ...] = DEFAULT_CLASSES
    positive: int | None = 1
    proba: np.ndarray | None = None
    unreadable: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.latency_ms is None:
            self.latency_ms = np.full(self.uuid.shape[0], math.nan)
        if len(self.classes) != 2:
            self.positive = None

    def __len__(self) -> int:
        return int(self.uuid.shape[0])

    @property
    def is_classifier(self) -> bool:
        return bool(self.classes)

    def take(self, index: np.ndarray) -> Columns:
        """Rows selected by an integer index or boolean mask (counts are kept as they are)."""
        return Columns(
            self.uuid[index],
            self.start_ms[index],
            self.deployment_crn[index],
            self.prediction[index],
            self.label[index],
            self.features[index],
            self.feature_names,
            dict(self.counts),
            self.latency_ms[index],
            {name: values[index] for name, values in self.categories.items()},
            self.classes,
            self.positive,
            None if self.proba is None else self.proba[index],
            None if self.unreadable is None else self.unreadable[index],
        )

    def training_frame(self, spec: ModelConfig | str) -> pd.DataFrame:
        """One row per labelled prediction, as every training source gives it.

        Rows with an unreadable feature (counted in ``counts["non_finite"]``) are dropped;
        missing values stay (NaN, None) for the trainer's imputation.

        Args:
            spec: the model spec. A label name alone (the form before model specs) gives the
                numeric features and drops rows with a missing one too.

        Returns:
            Frame with each feature by its kind (float64 numeric, object of str/None
            categorical) in the spec's order, the label column (class values for a classifier,
            float64 targets for a regressor) and ``start_ms``, in time order.

        Raises:
            DataError: the spec names a feature these columns do not hold.
        """
        import pandas as pd  # only training needs it: reading records stays light

        legacy = isinstance(spec, str)
        label_name = spec if legacy else spec.label.name
        names = [*self.feature_names, *self.categories] if legacy else spec.feature_names
        held = set(self.feature_names) | set(self.categories)
        missing = [n for n in names if n not in held]
        if missing:
            raise DataError(f"training rows: the tracked features lack {', '.join(missing)} (have {', '.join(held)})")
        ok = np.isfinite(self.label) & ~np.isnan(self.prediction)
        if self.unreadable is not None:
            ok &= ~self.unreadable
        if legacy:
            ok &= np.isfinite(self.features).all(axis=1)
        numeric = {name: j for j, name in enumerate(self.feature_names)}
        data: dict[str, Any] = {}
        for name in names:  # object, not pandas' string dtype: the contract every source keeps
            values = self.features[ok, numeric[name]] if name in numeric else self.categories[name][ok]
            data[name] = pd.Series(values, dtype=values.dtype)
        labels = self.label_values(self.label[ok])
        data[label_name] = pd.Series(labels, dtype=labels.dtype)
        data["start_ms"] = pd.Series(self.start_ms[ok], dtype=np.int64)
        return pd.DataFrame(data, columns=[*names, label_name, "start_ms"])

    def label_values(self, indexes: np.ndarray) -> np.ndarray:
        """Class values of class indexes (int64 when every class is an int; else object), or the
        regression targets as they are."""
        if not self.is_classifier:
            return indexes.astype(np.float64)
        if all(isinstance(c, int) and not isinstance(c, bool) for c in self.classes):
            return np.asarray(self.classes, dtype=np.int64)[indexes.astype(np.intp)]
        return np.asarray(self.classes, dtype=object)[indexes.astype(np.intp)]


def _time_order(start_ms: np.ndarray) -> np.ndarray:
    """Stable ascending order of start times (ties keep input order)."""
    n = start_ms.size
    span = int(start_ms.max()) - int(start_ms.min()) + 1
    if span * n < 2**62:  # unique keys (time, position): the fast unstable sort gives the stable order
        return np.argsort((start_ms - start_ms.min()) * n + np.arange(n, dtype=np.int64))
    return np.argsort(start_ms, kind="stable")


def _read_classes(rows: RawRows, reading: Reading) -> Reading:
    if reading.classes is not None:
        return reading
    return reading.with_classes(discover_classes(rows.prediction, rows.label))


def _count_missing_bad(values: np.ndarray, bad: np.ndarray | None) -> tuple[int, int]:
    n_bad = 0 if bad is None else int(np.count_nonzero(bad))
    return int(np.count_nonzero(np.isnan(values))) - n_bad, n_bad


def _classes_of(
    values: Any, reading: Reading, scratch: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(indexes, not_a_class, unreadable)`` of a float column or a raw list; infinities are unreadable."""
    if isinstance(values, np.ndarray):
        bad = None
        if values.size and (math.isinf(np.fmin.reduce(values)) or math.isinf(np.fmax.reduce(values))):
            bad = np.isinf(values)
            values = np.where(bad, math.nan, values)
        out, other = class_indexes_of_floats(values, reading, scratch)
        return out, other, bad
    return class_indexes_of_values(values, reading)


def _targets(values: Any) -> tuple[np.ndarray, np.ndarray | None]:
    """Regression numbers of a float column or a raw list, and a mask of the unreadable ones (NaN then)."""
    arr, bad = (values, None) if isinstance(values, np.ndarray) else floats(values, single_lists=True)
    return arr, blank_unreadable(arr, bad)


def finish_columns(rows: RawRows, counts: dict[str, int], reading: Reading) -> Columns:
    """Columns from the rows of one decoding path: values read as the spec says, unusable ones
    blanked and counted, in time order.

    Args:
        rows: the rows (their float arrays are modified in place).
        counts: ``Columns.counts`` so far (records, aggregates, malformed, duplicates, timestamps).
        reading: what to read (``Reading.of`` the spec).

    Returns:
        The columns, as ``records_to_columns`` returns them.
    """
    latency = rows.latency
    if latency.size and not (np.fmin.reduce(latency) >= 0 and np.fmax.reduce(latency) < math.inf):
        latency[~((latency >= 0) & (latency < math.inf))] = math.nan  # absent, unreadable, infinite or end < start
    reading = _read_classes(rows, reading) if reading.is_classifier else reading
    if reading.is_classifier:
        prediction, _, pred_bad = _classes_of(rows.prediction, reading, rows.scratch)
        label, not_class, label_bad = _classes_of(rows.label, reading, rows.scratch)
        if not_class is not None and not_class.any():
            label = np.where(not_class, math.nan, label)
            label_bad = not_class if label_bad is None else (label_bad | not_class)
    else:
        prediction, pred_bad = _targets(rows.prediction)
        label, label_bad = _targets(rows.label)
    counts["missing_prediction"], counts["bad_prediction"] = _count_missing_bad(prediction, pred_bad)
    counts["bad_label"] = 0 if label_bad is None else int(np.count_nonzero(label_bad))
    features = rows.features
    missing_rows, unreadable = _feature_rows(rows)
    counts["missing_features"] = 0 if missing_rows is None else int(np.count_nonzero(missing_rows))
    counts["non_finite"] = 0 if unreadable is None else int(np.count_nonzero(unreadable))
    proba = rows.proba
    if proba is not None and proba.ndim == 1 and len(reading.classes or ()) > 2:
        proba = None  # a single probability read before the classes were found to be more than two
    if proba is not None:
        proba[~np.isfinite(proba)] = math.nan
        if np.isnan(proba).all():
            proba = None

    uuid_arr, start_ms, crns, categories = rows.uuid, rows.start_ms, rows.crn, rows.categories
    if len(start_ms) > 1 and not nondecreasing(start_ms):
        order = _time_order(start_ms)
        uuid_arr, start_ms, crns = uuid_arr[order], start_ms[order], crns[order]
        prediction, label, latency = (
            np.take(a, order, out=plain_pages(order.size)) for a in (prediction, label, latency)
        )
        features = np.take(features, order, axis=0, out=plain_pages(order.size, features.shape[1]))
        categories = {name: values[order] for name, values in categories.items()}
        proba = None if proba is None else proba[order]
        unreadable = None if unreadable is None else unreadable[order]
    return Columns(
        uuid=uuid_arr,
        start_ms=start_ms,
        deployment_crn=crns,
        prediction=prediction,
        label=label,
        features=features,
        feature_names=tuple(reading.numeric),
        counts=counts,
        latency_ms=latency,
        categories=categories,
        classes=tuple(reading.classes or ()),
        positive=reading.positive_index(),
        proba=proba,
        unreadable=unreadable,
    )


def _either(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    return b if a is None else a if b is None else (a | b)


def _feature_rows(rows: RawRows) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Rows with a missing feature and rows with an unreadable one (None: no such row); unreadable
    numeric cells are blanked to NaN in place."""
    missing, unreadable = None, None
    features = rows.features
    if rows.features_bad is not None or not all_finite(features):
        unusable = blank_unreadable(features, rows.features_bad)
        missing = (np.isnan(features) & ~unusable).any(axis=1)
        unreadable = unusable.any(axis=1) if unusable.any() else None
    for name, values in rows.categories.items():
        absent = np.equal(values, None)
        bad = rows.categories_bad.get(name)
        if bad is not None:
            absent &= ~bad
            unreadable = _either(unreadable, bad)
        if absent.any():
            missing = _either(missing, absent)
    return missing, unreadable
