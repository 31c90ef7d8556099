"""``cmlapi.rest``: the HTTP error type raised by every client method."""

from localcml.client import ApiException

__all__ = ["ApiException"]
