"""Synthetic telco cell-tower traffic whose label depends on the features, with configurable drift."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from monitoring.core.errors import ConfigError

if TYPE_CHECKING:
    from monitoring.config.pipeline import PipelineConfig

DRIFT_KINDS = ("none", "covariate", "concept", "both")
N_SIGNALS = 4
#: The scenario's own feature and label names: a model spec with other names is not about this data.
SIGNALS = ("iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4")
LABEL = "cell_tower_failure"

#: Steepness of the logistic link from score to failure probability (sets the Bayes error).
_STEEPNESS = 4.0
#: Latent-space location shift per unit of covariate drift, one entry per signal.
_COVARIATE_SHIFT = np.array([0.8, 0.5, 0.6, -0.8])
#: Centre and scale that map each signal to a unit-free value before scoring.
_CENTRE = np.array([6.5, 52.5, 103.5, 50.0])
_SCALE = np.array([2.3, 1.0, 1.4, 17.0])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _score_before(x: np.ndarray) -> np.ndarray:
    """Failure score before concept drift: high error rate and high load fail, as do odd temperatures."""
    x1, x2, x3, x4 = x.T
    return 1.5 * x1 + 1.2 * x4 + 0.8 * x3 * x3 - 0.3 * x2 - 1.9


def _score_after(x: np.ndarray) -> np.ndarray:
    """Failure score after concept drift: a new failure mode driven by temperature, not error rate."""
    x1, _, x3, x4 = x.T
    return 1.8 * x3 + 0.8 * x4 - 0.6 * x1 * x1 - 0.5


@dataclass(frozen=True)
class TelcoScenario:
    """Cell-tower telemetry with a learnable failure rule, as in the seed lab but with real signal.

    Features (by position in ``features``): an error-rate signal in 1..12, a voltage-like signal
    in 50..55 correlated with the first, a temperature-like signal in 100..107, and a load in
    percent (0..100). The label is 1 (failure) with probability ``sigmoid(4 * score(features))``,
    then flipped with probability ``label_noise``.

    Attributes:
        features: the four feature column names, in signal order.
        label: the label column name.
        label_noise: probability that a label is flipped.
        drift_kind: ``none``, ``covariate``, ``concept`` or ``both``.
        drift_strength: multiplies ``drift_level``; concept drift saturates at 1.
    """

    features: tuple[str, ...] = SIGNALS
    label: str = LABEL
    label_noise: float = 0.03
    drift_kind: str = "concept"
    drift_strength: float = 1.0

    def __post_init__(self) -> None:
        problems = []
        if len(self.features) != N_SIGNALS:
            problems.append(
                f"model.features: the telco scenario needs exactly {N_SIGNALS} features, got {len(self.features)}"
            )
        if self.drift_kind not in DRIFT_KINDS:
            problems.append(f"scenario.drift.kind: expected one of {', '.join(DRIFT_KINDS)}, got {self.drift_kind!r}")
        if not 0 <= self.label_noise <= 0.5:
            problems.append(f"scenario.label_noise: must be between 0 and 0.5, got {self.label_noise}")
        if self.drift_strength < 0:
            problems.append(f"scenario.drift.strength: must not be negative, got {self.drift_strength}")
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_config(cls, cfg: PipelineConfig, key: str = "data.training") -> TelcoScenario:
        """Build the scenario from the ``model`` and ``scenario`` sections.

        Args:
            cfg: the validated pipeline configuration.
            key: the config key that chose the synthetic data (``data.training`` or ``data.replay``).

        Returns:
            The scenario.

        Raises:
            ConfigError: the model spec is not the scenario's (its four numeric signals and its
                0/1 label): the data would silently stand in for the user's own.
        """
        spec = cfg.model
        kinds_ok = all(kind == "numeric" for kind in spec.kinds.values())
        if (
            tuple(spec.feature_names) != SIGNALS
            or spec.label.name != LABEL
            or spec.task != "classification"
            or (not kinds_ok or [str(c) for c in spec.classes] != ["0", "1"])
        ):
            raise ConfigError(
                f"{key}: the built-in synthetic scenario is telco cell-tower data (numeric features "
                f"{', '.join(SIGNALS)}; label {LABEL} with classes 0, 1), but model.features are "
                f"{', '.join(spec.feature_names)} and model.label is {spec.label.name!r}: it would stand in for "
                f"your data under your column names. Configure {key} with your own data (see docs/own-model.md)"
            )
        drift = cfg.scenario.drift
        return cls(
            features=tuple(cfg.model.feature_names),
            label=cfg.model.label.name,
            label_noise=cfg.scenario.label_noise,
            drift_kind=drift.kind,
            drift_strength=drift.strength,
        )

    def _weights(self, drift_level: float) -> tuple[float, float]:
        """(covariate shift, concept mix) for a drift level."""
        if not 0.0 <= drift_level <= 1.0:  # also rejects NaN
            raise ValueError(f"drift_level must be between 0 and 1, got {drift_level}")
        amount = self.drift_strength * drift_level
        covariate = amount if self.drift_kind in ("covariate", "both") else 0.0
        concept = min(1.0, amount) if self.drift_kind in ("concept", "both") else 0.0
        return covariate, concept

    def generate(self, n: int, rng: np.random.Generator, drift_level: float = 0.0) -> pd.DataFrame:
        """Draw ``n`` labelled rows.

        The same generator state always gives the same rows: the draws do not depend on the
        drift settings, which only transform them.

        Args:
            n: number of rows (0 gives an empty frame with the right columns).
            rng: the random generator (consumed).
            drift_level: 0 = the training distribution, 1 = fully drifted, scaled by the strength.

        Returns:
            A frame with the four float feature columns and the int64 label column.

        Raises:
            ValueError: ``n`` is negative or ``drift_level`` is outside [0, 1].
        """
        if n < 0:
            raise ValueError(f"n must not be negative, got {n}")
        covariate, concept = self._weights(float(drift_level))
        latent = rng.standard_normal((n, N_SIGNALS))
        u_label = rng.random(n)
        u_flip = rng.random(n)

        latent = latent + covariate * _COVARIATE_SHIFT
        signals = np.empty((n, N_SIGNALS))
        signals[:, 0] = 1.0 + 11.0 * _sigmoid(1.1 * latent[:, 0])
        signals[:, 1] = 50.0 + 5.0 * _sigmoid(1.2 * latent[:, 0] + 0.6 * latent[:, 1])
        signals[:, 2] = 100.0 + 7.0 * _sigmoid(1.1 * latent[:, 2])
        signals[:, 3] = 100.0 * _sigmoid(0.9 * latent[:, 3])
        signals = np.round(signals, 3)

        probability = self.failure_probability(signals, concept)
        labels = (u_label < probability).astype(np.int64)
        labels = np.where(u_flip < self.label_noise, 1 - labels, labels)

        frame = pd.DataFrame(signals, columns=list(self.features))
        frame[self.label] = labels
        return frame

    @staticmethod
    def failure_probability(signals: np.ndarray, concept: float = 0.0) -> np.ndarray:
        """P(failure) before label noise, for raw signal values.

        Args:
            signals: array (n, 4) of raw signal values in signal order.
            concept: 0 = the original rule, 1 = the drifted rule, in between a blend.

        Returns:
            Array (n,) of probabilities.
        """
        x = (np.asarray(signals, dtype=float) - _CENTRE) / _SCALE
        score = (1.0 - concept) * _score_before(x) + concept * _score_after(x)
        return _sigmoid(_STEEPNESS * score)


def drift_level_at(now_ms: int, epoch_ms: int, start_after_ms: int) -> float:
    """The drift level at a time: a step from 0 to 1 at ``epoch_ms + start_after_ms``.

    Args:
        now_ms: the time the traffic is generated for.
        epoch_ms: when the scenario's first traffic run happened.
        start_after_ms: configured ``scenario.drift.start_after``.

    Returns:
        0.0 before drift starts, 1.0 from then on.
    """
    return 1.0 if now_ms >= epoch_ms + start_after_ms else 0.0
