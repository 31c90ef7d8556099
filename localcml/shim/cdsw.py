"""Importable ``cdsw`` for the local workspace: CML's model-metrics functions over the local store.

The store-touching functions pass through the fault point ``metrics.<function>`` first (see
``localcml.faults``): ``locked`` raises what a locked SQLite store raises, ``unavailable``
what an unreachable store raises. Without a planned fault they are exactly the SDK's functions.
"""

import functools
import sqlite3

from localcml.faults import take as _take
from localcml.metrics import sdk as _sdk
from localcml.metrics.sdk import *  # noqa: F403 - the module's public surface is sdk.__all__
from localcml.metrics.sdk import __all__, _get_model_call_endpoint  # noqa: F401


def _check(function: str) -> None:
    fault = _take(f"metrics.{function}")
    if fault is None:
        return
    if fault.action == "locked":
        raise sqlite3.OperationalError("database is locked (fault injected)")
    raise ConnectionError(f"model metrics store unavailable (fault injected at {function})")


def _guarded(function):
    @functools.wraps(function)
    def call(*args, **kwargs):
        _check(function.__name__)
        return function(*args, **kwargs)

    return call


read_metrics = _guarded(_sdk.read_metrics)
track_delayed_metrics = _guarded(_sdk.track_delayed_metrics)
track_aggregate_metrics = _guarded(_sdk.track_aggregate_metrics)


def model_metrics(func):
    """``cdsw.model_metrics``: each call records one metrics record (and may meet a planned fault)."""
    recorded = _sdk.model_metrics(func)

    @functools.wraps(func)
    def call(*args, **kwargs):
        _check("model_metrics")
        return recorded(*args, **kwargs)

    return call
