"""Case (d) worker, run by another virtualenv's Python: hourly accuracy/precision/recall/F1 with a library.

``python bench/thirdparty_worker.py {evidently|nannyml} COLUMNS.csv`` loads the ready-made columns
(``start_ms, prediction, probability, label``; labelled predictions only) before the clock starts,
then computes the per-window metrics and prints ``BENCH-RESULT {json}``. Only numpy, pandas and the
library are needed here (not the project's dependencies).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

# No usage telemetry: this machine reaches no outside host, and a benchmark must not try to.
os.environ["NML_DISABLE_USAGE_LOGGING"] = "1"
os.environ["DO_NOT_TRACK"] = "1"

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.measure import measured  # stdlib-only module of this repo

RESULT_PREFIX = "BENCH-RESULT "


def evidently_windows(frame: pd.DataFrame) -> pd.DataFrame:
    """One Evidently report (accuracy, precision, recall, F1) per hourly window."""
    import evidently
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import Accuracy, F1Score, Precision, Recall

    definition = DataDefinition(
        classification=[BinaryClassification(target="label", prediction_labels="prediction")], numerical_columns=[]
    )
    rows = []
    for window, part in frame.groupby("window", sort=True):
        data = Dataset.from_pandas(part[["label", "prediction"]].reset_index(drop=True), data_definition=definition)
        snapshot = Report([Accuracy(), Precision(), Recall(), F1Score()]).run(current_data=data)
        values = [m["value"] for m in snapshot.dict()["metrics"]]
        rows.append({"window": window, "n": len(part), "accuracy": float(values[0]), "f1": float(values[3])})
    out = pd.DataFrame(rows)
    out.attrs["version"] = evidently.__version__
    return out


def nannyml_windows(frame: pd.DataFrame) -> pd.DataFrame:
    """NannyML's realized performance with hourly chunks, fitted on the first day as reference."""
    import nannyml as nml

    data = frame.assign(timestamp=pd.to_datetime(frame["start_ms"], unit="ms"))
    reference = data[data["start_ms"] < data["start_ms"].min() + 24 * 3_600_000]
    calc = nml.PerformanceCalculator(
        y_pred_proba="probability",
        y_pred="prediction",
        y_true="label",
        timestamp_column_name="timestamp",
        problem_type="classification_binary",
        metrics=["accuracy", "precision", "recall", "f1"],
        chunk_period="h",
    )
    calc.fit(reference)
    result = calc.calculate(data).filter(period="analysis").to_df()
    out = pd.DataFrame(
        {
            "n": result[("chunk", "end_index")] - result[("chunk", "start_index")] + 1,
            "accuracy": result[("accuracy", "value")],
            "f1": result[("f1", "value")],
        }
    )
    out.attrs["version"] = nml.__version__
    return out


def main(argv: list[str]) -> int:
    """Returns 0 with a result line; 2 on bad usage. Import errors propagate (the parent reports them)."""
    if len(argv) != 2 or argv[0] not in ("evidently", "nannyml"):
        print("usage: thirdparty_worker.py {evidently|nannyml} COLUMNS.csv", file=sys.stderr)
        return 2
    frame = pd.read_csv(argv[1])
    frame["window"] = frame["start_ms"] // 3_600_000
    started = time.perf_counter()
    with measured() as m:
        windows = evidently_windows(frame) if argv[0] == "evidently" else nannyml_windows(frame)
    print(
        RESULT_PREFIX
        + json.dumps(
            {
                **m.to_dict(),
                "version": windows.attrs.get("version"),
                "windows": len(windows),
                "labelled": int(windows["n"].sum()),
                "accuracy_sum": round(float(windows["accuracy"].sum()), 6),
                "wall_s": time.perf_counter() - started,
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
