"""The model function of a build made from a registered version: an MLflow pyfunc model behind CML's protocol.

A request is the MLflow scoring input a CML model built from the registry takes:
``{"dataframe_split": {"columns": [...], "data": [[...]]}}``, ``{"dataframe_records": [{...}]}``,
``{"inputs": ...}``, or one record ``{"column": value, ...}``; the answer is
``{"predictions": [...]}``. Imported by the serving file a registered build writes
(``localcml.registry.artifacts.SERVE_SOURCE``), in the replica's runtime, which must have ``mlflow``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any


def _frame(args: Any):
    import pandas as pd

    if isinstance(args, dict) and "dataframe_split" in args:
        split = args["dataframe_split"]
        return pd.DataFrame(split.get("data", []), columns=split.get("columns"), index=split.get("index"))
    if isinstance(args, dict) and "dataframe_records" in args:
        return pd.DataFrame(args["dataframe_records"])
    if isinstance(args, dict) and "inputs" in args:
        inputs = args["inputs"]
        return pd.DataFrame(inputs if isinstance(inputs, list) else [inputs])
    if isinstance(args, list):
        return pd.DataFrame(args)
    if isinstance(args, dict):
        return pd.DataFrame([args])
    raise ValueError("the request must be dataframe_split, dataframe_records, inputs, a record or a list of records")


def _plain(out: Any) -> Any:
    if hasattr(out, "to_dict") and hasattr(out, "columns"):
        return out.to_dict(orient="records")
    if hasattr(out, "tolist"):
        return out.tolist()
    return out


def serve(model_dir: str | Path) -> Callable[[Any], dict]:
    """``predict(request) -> {"predictions": [...]}`` over the MLflow model in ``model_dir``."""
    import mlflow.pyfunc

    model = mlflow.pyfunc.load_model(str(Path(model_dir).resolve()))

    def predict(args: Any) -> dict:
        return {"predictions": _plain(model.predict(_frame(args)))}

    return predict
