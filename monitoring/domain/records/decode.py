"""CML ``read_metrics`` records to numpy columns, read as the model spec says: the one public entry of decoding.

Well-formed records take the fast path (``fast_path``), any others the general path
(``general_path``); both end in ``columns.finish_columns``. A dump (JSON text) has its own entry,
``dumps.decode_dump``, which falls back on this one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from monitoring.domain.records.columns import COUNT_NAMES, Columns, finish_columns
from monitoring.domain.records.fast_path import well_formed_rows
from monitoring.domain.records.general_path import general_rows
from monitoring.domain.records.keys import RECORD_KEYS, Keys
from monitoring.domain.records.values import Reading

if TYPE_CHECKING:
    from monitoring.config.model_spec import ModelConfig


def records_to_columns(
    records: Iterable[Mapping[str, Any]],
    spec: ModelConfig | Sequence[str] | Reading,
    prediction_key: str = "prediction",
    label_key: str = "final_label",
    features_key: str = "input_features",
    probability_key: str = "probability",
    probabilities_key: str = "probabilities",
    discover_classes: bool = False,
) -> Columns:
    """Turn CML metric records into columns read as the model spec says, counting what was ignored.

    Numeric features become float64 (text or an infinity is unreadable), categorical ones text
    (a number is written as text: ``3.0`` is ``"3"``). A classifier's labels and predictions
    go through ``label.mapping`` (by their text) and must then name a class: ``1`` and ``"1"``
    name the class ``1``, ``True`` the class ``1`` or a mapping key ``"true"``. A regressor's
    are numbers.

    Args:
        records: the ``read_metrics()["metrics"]`` list (any order; may hold duplicates).
        spec: the model spec; a plain list of names means numeric features and classes ``[0, 1]``.
        prediction_key: metric holding the prediction (a value or a one-element list).
        label_key: metric holding the delayed ground truth.
        features_key: metric holding the dict of input features.
        probability_key: metric holding a binary classifier's P(positive class).
        probabilities_key: metric holding ``{class: probability}`` (multi-class; binary when
            ``probability_key`` is absent).
        discover_classes: a classifier's classes are those found in the data, not the spec's.

    Returns:
        The columns, sorted by ``start_ms`` (ties keep input order); see ``Columns.counts``.
        Well-formed records (``fast_path.well_formed_rows``) take the fast path, in blocks; any
        others the general path (``general_path.general_rows``). Both give the same columns.

    Raises:
        DataError: the spec's classes are ambiguous (two written alike).
    """
    reading = Reading.of(spec, discover_classes)
    keys = Keys(prediction_key, label_key, features_key, probability_key, probabilities_key)
    recs = records if isinstance(records, list) else list(records)
    counts = dict.fromkeys(COUNT_NAMES, 0)
    counts["records"] = len(recs)
    rows = well_formed_rows(recs, RECORD_KEYS, keys, reading, counts)
    if rows is None:
        rows = general_rows(recs, counts, keys, reading)
    return finish_columns(rows, counts, reading)
