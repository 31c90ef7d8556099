"""``cmlapi.models``: one class per API v2 definition, generated from the spec."""

from localcml.client.models import MODELS as _MODELS

globals().update(_MODELS)
__all__ = sorted(_MODELS)
