"""The embedded local workspace's ``cmlapi``: the CML API v2 client, its model classes and helpers."""

from localcml.client.api import ApiClient, CMLServiceApi, Configuration, default_client  # noqa: F401

from . import models, rest, utils  # noqa: F401
from .models import *  # noqa: F403
from .rest import ApiException  # noqa: F401
