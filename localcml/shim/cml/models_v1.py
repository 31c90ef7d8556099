"""``cml.models_v1`` for the local workspace: the ``cml_model`` decorator and ``call_model``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from localcml.metrics.sdk import call_model, model_metrics

__all__ = ["cml_model", "call_model"]


def cml_model(func: Callable[..., Any] | None = None, *, metrics: bool = False) -> Any:
    """Mark a model function; with ``metrics=True`` it behaves like ``cdsw.model_metrics``.

    Used as ``@cml_model(metrics=True)`` (the documented form) or bare ``@cml_model``.

    Args:
        func: the function, when used without parentheses.
        metrics: record a metrics record per call and return ``{"prediction", "uuid"}``.

    Returns:
        The decorated function, or a decorator when ``func`` is not given.
    """

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        return model_metrics(f) if metrics else f

    return decorate(func) if func is not None else decorate
