"""Where a CML record keeps each value: its own keys, as CML spells them, and the metric keys the config names."""

from __future__ import annotations

from dataclasses import dataclass

UUID_KEY = "predictionUuid"
START_KEY = "startTimeStampMs"  # capital S in "Stamp", as CML returns it
END_KEY = "endTimeStampMs"  # when the decorated predict returned
CRN_KEY = "modelDeploymentCrn"
METRICS_KEY = "metrics"
#: A record's own keys, in the order the decoding paths take them.
RECORD_KEYS = (UUID_KEY, START_KEY, END_KEY, CRN_KEY, METRICS_KEY)


@dataclass(frozen=True)
class Keys:
    """The metric keys the config names (``windows.*_key``): where a record's metrics keep each value."""

    prediction: str = "prediction"
    label: str = "final_label"
    features: str = "input_features"
    probability: str = "probability"
    probabilities: str = "probabilities"
