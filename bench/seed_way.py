"""The seed's way of computing window metrics (pandas only: no import of this project, so its processes stay lean)."""

from __future__ import annotations

import pandas as pd


def seed(records: list[dict]) -> pd.DataFrame:
    """The seed's way: ``json_normalize`` of every record, then pandas per hourly window.

    Vectorised pandas (boolean columns summed per group), the fastest form of that approach,
    so the baseline is not slowed down by per-window sklearn calls.
    """
    df = pd.json_normalize(records)
    df = df[df["predictionUuid"] != ""]
    df = df.dropna(subset=["metrics.prediction"])
    df["window"] = pd.to_datetime(df["startTimeStampMs"], unit="ms").dt.floor("1h")
    predictions = df.groupby("window").size()
    lab = df.dropna(subset=["metrics.final_label"])
    y, p = lab["metrics.final_label"].astype(int), lab["metrics.prediction"].astype(int)
    counts = (
        pd.DataFrame(
            {
                "window": lab["window"],
                "n": 1,
                "correct": y == p,
                "tp": (y == 1) & (p == 1),
                "fp": (y == 0) & (p == 1),
                "fn": (y == 1) & (p == 0),
            }
        )
        .groupby("window")
        .sum()
    )
    counts = counts.reindex(predictions.index, fill_value=0)
    precision = (counts.tp / (counts.tp + counts.fp)).fillna(0.0)
    recall = (counts.tp / (counts.tp + counts.fn)).fillna(0.0)
    f1 = (2 * counts.tp / (2 * counts.tp + counts.fp + counts.fn)).fillna(0.0)
    accuracy = (counts.correct / counts.n).where(counts.n > 0)
    return pd.DataFrame(
        {
            "start_ms": predictions.index.astype("int64") // 1_000_000,
            "predictions": predictions.to_numpy(),
            "labelled": counts.n.to_numpy(),
            "accuracy": accuracy.to_numpy(),
            "precision": precision.to_numpy(),
            "recall": recall.to_numpy(),
            "f1": f1.to_numpy(),
        }
    )
