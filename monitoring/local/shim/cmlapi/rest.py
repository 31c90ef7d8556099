"""``cmlapi.rest``: the HTTP error type raised by every client method."""
from monitoring.local.client import ApiException  # noqa: F401

__all__ = ["ApiException"]
