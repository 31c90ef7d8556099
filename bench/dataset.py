"""Deterministic CML-shaped prediction records: as ``read_metrics`` JSON, or as metrics-store rows."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FEATURES = ("iot_signal_1", "iot_signal_2", "iot_signal_3", "iot_signal_4")
WORKSPACE_CRN = "crn:cdp:ml:us-west-1:8a1e15cd-04c2-48aa-8f35-b4a8c11997d3:workspace:bench-0001"
DEPLOYMENT_CRN = f"{WORKSPACE_CRN}/4f3c2b1a-9d8e-4f7a-8b6c-5d4e3f2a1b0c"
BUILD_CRN = f"{WORKSPACE_CRN}/0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
MODEL_CRN = f"{WORKSPACE_CRN}/d4c3b2a1-0f9e-4d8c-b7a6-5f4e3d2c1b0a"
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: Share of predictions whose ground truth has arrived (``final_label`` merged in).
LABELLED_SHARE = 0.9
#: Rows generated per block (bounds the generator's memory).
BLOCK = 200_000
_RECORD = (
    '{{"modelDeploymentCrn":"{dep}","modelBuildCrn":"{build}","modelCrn":"{model}",'
    '"startTimeStampMs":{start},"endTimeStampMs":{end},"predictionUuid":"{uuid}","metrics":{metrics}}}'
)
_FEATURES = '{{"input_features":{{"iot_signal_1":{},"iot_signal_2":{},"iot_signal_3":{},"iot_signal_4":{}}},'
_LABELLED = '"prediction":{},"probability":{},"model_version":"v1","final_label":{}}}'
_UNLABELLED = '"prediction":{},"probability":{},"model_version":"v1"}}'


@dataclass(frozen=True)
class Spec:
    """Which records: ``n`` predictions spread over ``days`` from ``start_ms``, seeded."""

    n: int
    start_ms: int
    days: float = 10.0
    seed: int = 7


def _uuids(rng: np.random.Generator, n: int) -> list[str]:
    """Random version-4 uuids as text, from the seeded generator."""
    raw = bytearray(rng.bytes(16 * n))
    for i in range(n):
        raw[16 * i + 6] = (raw[16 * i + 6] & 0x0F) | 0x40
        raw[16 * i + 8] = (raw[16 * i + 8] & 0x3F) | 0x80
    hexed = raw.hex()
    return [
        f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}" for h in (hexed[32 * i : 32 * i + 32] for i in range(n))
    ]


def blocks(spec: Spec) -> Iterator[dict[str, list]]:
    """Column blocks of the records in start-time order, each at most ``BLOCK`` rows.

    Yields:
        Dicts of equal-length lists: ``start``, ``end``, ``uuid``, ``f1..f4`` (text), ``prediction``,
        ``probability`` (text), ``label`` (int, or None when unlabelled).
    """
    rng = np.random.default_rng(spec.seed)
    span = int(spec.days * DAY_MS)
    for lo in range(0, spec.n, BLOCK):
        m = min(BLOCK, spec.n - lo)
        # evenly spread with jitter, so block boundaries stay in time order
        offsets = (np.arange(lo, lo + m, dtype=np.float64) + rng.random(m)) * (span / spec.n)
        start = spec.start_ms + offsets.astype(np.int64)
        end = start + rng.integers(2, 40, m)
        x = rng.normal([0.0, 1.0, -0.5, 2.0], [1.0, 0.8, 1.2, 0.5], size=(m, 4)).round(4)
        score = x @ np.array([1.2, -0.8, 0.6, 0.3]) - 0.4
        probability = (1.0 / (1.0 + np.exp(-score))).round(4)
        prediction = (probability >= 0.5).astype(np.int64)
        truth = np.where(rng.random(m) < 0.88, prediction, 1 - prediction)
        labelled = rng.random(m) < LABELLED_SHARE
        yield {
            "start": start.tolist(),
            "end": end.tolist(),
            "uuid": _uuids(rng, m),
            "f": [x[:, j].astype(str).tolist() for j in range(4)],
            "prediction": prediction.tolist(),
            "probability": probability.astype(str).tolist(),
            "label": [int(t) if ok else None for t, ok in zip(truth.tolist(), labelled.tolist())],
        }


def metrics_texts(block: dict[str, list]) -> list[str]:
    """The ``metrics`` JSON text of each record of a block (what the model replica tracks)."""
    out = []
    f1, f2, f3, f4 = block["f"]
    for a, b, c, d, p, q, y in zip(f1, f2, f3, f4, block["prediction"], block["probability"], block["label"]):
        head = _FEATURES.format(a, b, c, d)
        out.append(head + (_UNLABELLED.format(p, q) if y is None else _LABELLED.format(p, q, y)))
    return out


def store_rows(
    spec: Spec, deployment_crn: str = DEPLOYMENT_CRN, build_crn: str = BUILD_CRN, model_crn: str = MODEL_CRN
) -> Iterator[list[tuple]]:
    """Blocks of metrics-store rows ``(deployment, build, model, uuid, start, end, metrics_text)``."""
    for block in blocks(spec):
        yield [
            (deployment_crn, build_crn, model_crn, u, s, e, t)
            for u, s, e, t in zip(block["uuid"], block["start"], block["end"], metrics_texts(block))
        ]


def write_json(spec: Spec, path: Path) -> Path:
    """Write ``{"metrics": [...]}`` as ``read_metrics`` returns it: predictions in time order, plus one
    aggregate record (``predictionUuid == ""``) per hour, as compute_accuracy writes back.

    Returns:
        ``path`` (written atomically; an existing file is reused as a cache).
    """
    if path.is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    next_hour = -(-spec.start_ms // HOUR_MS) * HOUR_MS
    with open(tmp, "w") as out:
        out.write('{"metrics":[')
        first = True
        for block in blocks(spec):
            texts = metrics_texts(block)
            parts = []
            for u, s, e, t in zip(block["uuid"], block["start"], block["end"], texts):
                while s >= next_hour:
                    parts.append(
                        _RECORD.format(
                            dep=DEPLOYMENT_CRN,
                            build=BUILD_CRN,
                            model=MODEL_CRN,
                            start=next_hour,
                            end=next_hour + HOUR_MS,
                            uuid="",
                            metrics='{"accuracy":0.88}',
                        )
                    )
                    next_hour += HOUR_MS
                parts.append(
                    _RECORD.format(
                        dep=DEPLOYMENT_CRN, build=BUILD_CRN, model=MODEL_CRN, start=s, end=e, uuid=u, metrics=t
                    )
                )
            out.write(("" if first else ",") + ",".join(parts))
            first = False
        out.write("]}")
    tmp.replace(path)
    return path


def load_json(path: Path) -> list[dict]:
    """The records of a file written by ``write_json``, parsed (what ``read_metrics()["metrics"]`` is)."""
    with open(path) as f:
        return json.load(f)["metrics"]
