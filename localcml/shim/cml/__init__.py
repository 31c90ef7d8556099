"""Importable ``cml`` package for the local workspace: ``cml.models_v1`` and ``cml.metrics_v1``."""
