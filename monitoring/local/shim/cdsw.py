"""Importable ``cdsw`` for the local workspace: CML's model-metrics functions over the local store."""
from monitoring.local.sdk import *  # noqa: F401,F403 - the module's public surface is sdk.__all__
from monitoring.local.sdk import __all__, _get_model_call_endpoint  # noqa: F401
