"""Importable ``cml`` package for the local workspace: ``cml.models_v1``, ``cml.metrics_v1`` and ``cml.data_v1``."""
