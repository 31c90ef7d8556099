"""``cmlapi.rest``: the HTTP error type raised by every client method."""

from localcml.client.api import ApiException

__all__ = ["ApiException"]
