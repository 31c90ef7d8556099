"""The ``cmlapi`` client of the local workspace: the service API over HTTP and the generated model classes."""

from localcml.client.api import ApiClient, ApiException, AsyncResult, CMLServiceApi, Configuration, default_client

__all__ = ["ApiClient", "ApiException", "AsyncResult", "CMLServiceApi", "Configuration", "default_client"]
