"""A ``cmlapi``-compatible API v2 client over real HTTP (swagger-codegen calling conventions).

``CMLServiceApi`` has one method per operation of the compact spec: body first, then path
parameters positionally (keywords work too), optional query parameters as keywords, and
``async_req=True`` for a result with ``.get()``. Errors are ``ApiException`` with ``status``,
``reason`` and ``body`` (the raw JSON text of grpc-gateway's ``runtimeError``).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import threading
from collections.abc import Callable
from typing import Any

import urllib3

from localcml.client.models import deserialize, serialize
from localcml.core.spec import Operation, operations

_MISSING = "please include the keyword arguments url and cml_api_key"
_CALL_OPTIONS = ("async_req", "_return_http_data_only", "_preload_content", "_request_timeout")


class ApiException(Exception):
    """An HTTP error from the API (``cmlapi.rest.ApiException``)."""

    def __init__(self, status: int | None = None, reason: str | None = None, http_resp=None):
        if http_resp is not None:
            self.status = http_resp.status
            self.reason = http_resp.reason
            self.body = http_resp.data.decode("utf-8") if isinstance(http_resp.data, bytes) else http_resp.data
            self.headers = http_resp.headers
        else:
            self.status, self.reason, self.body, self.headers = status, reason, None, None
        super().__init__(self.status, self.reason)

    def __str__(self) -> str:
        text = f"({self.status})\nReason: {self.reason}\n"
        if self.headers:
            text += f"HTTP response headers: {dict(self.headers)}\n"
        if self.body:
            text += f"HTTP response body: {self.body}\n"
        return text


class Configuration:
    """Where the API is: ``host`` is the bare workbench URL (``https://ml-xxxx.site``)."""

    def __init__(self) -> None:
        self.host = "http://localhost"
        self.api_key: dict[str, str] = {}
        self.api_key_prefix: dict[str, str] = {}
        self.verify_ssl = True
        self.ssl_ca_cert: str | None = None
        self.connection_pool_maxsize = 8


class AsyncResult:
    """What ``async_req=True`` returns: ``.get()`` waits for the call and returns or raises."""

    def __init__(self, call: Callable[[], Any]):
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True, name="cmlapi-async")
        self._thread.start()

    def _run(self, call: Callable[[], Any]) -> None:
        try:
            self._result = call()
        except BaseException as exc:  # noqa: BLE001 - handed to .get()
            self._error = exc

    def ready(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def get(self, timeout: float | None = None) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError("the API call did not finish in time")
        if self._error is not None:
            raise self._error
        return self._result


class ApiClient:
    """HTTP transport: JSON bodies, default headers, response deserialisation."""

    def __init__(
        self,
        configuration: Configuration | None = None,
        header_name: str | None = None,
        header_value: str | None = None,
    ):
        self.configuration = configuration or Configuration()
        self.default_headers: dict[str, str] = {}
        if header_name is not None:
            self.default_headers[header_name] = header_value or ""
        cert_reqs = "CERT_REQUIRED" if self.configuration.verify_ssl else "CERT_NONE"
        self.pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=self.configuration.connection_pool_maxsize,
            cert_reqs=cert_reqs,
            ca_certs=self.configuration.ssl_ca_cert,
        )

    def set_default_header(self, name: str, value: str) -> None:
        self.default_headers[name] = value

    def call_api(
        self,
        op: Operation,
        path_values: dict[str, str],
        query: dict[str, Any],
        body: Any,
        request_timeout: float | tuple | None = None,
        preload_content: bool = True,
        form: dict[str, Any] | None = None,
    ):
        url = self.configuration.host.rstrip("/") + op.url(path_values)
        fields = [(k, _query_value(v)) for k, v in query.items() if v is not None]
        headers = {"Accept": "application/json", "Content-Type": "application/json", **self.default_headers}
        payload = None
        if op.form_params:  # multipart/form-data (file uploads)
            payload, headers["Content-Type"] = urllib3.encode_multipart_formdata(
                {k: v for k, v in (form or {}).items() if v is not None}
            )
        elif op.body is not None or op.method in ("POST", "PATCH", "PUT"):
            payload = json.dumps(serialize(body) if body is not None else {}).encode("utf-8")
        if fields:
            from urllib.parse import urlencode

            url += "?" + urlencode(fields)
        timeout = urllib3.Timeout(*request_timeout) if isinstance(request_timeout, tuple) else request_timeout
        resp = self.pool.request(op.method, url, body=payload, headers=headers, timeout=timeout, preload_content=True)
        if not 200 <= resp.status <= 299:
            raise ApiException(http_resp=resp)
        if not preload_content:
            return resp
        if not op.response:  # a file download: the bytes as they came
            return resp.data
        text = resp.data.decode("utf-8")
        data = json.loads(text) if text.strip() else {}
        return deserialize(data, op.response)


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _py_name(param: str) -> str:
    return param.replace(".", "_")


def _make_method(op: Operation) -> Callable:
    name = op.name
    required = (["body"] if op.body else []) + [_py_name(p) for p in op.path_params]
    optional = [_py_name(q) for q in op.query_params + op.form_params]

    def method(self: CMLServiceApi, *args: Any, **kwargs: Any) -> Any:
        if len(args) > len(required):
            raise TypeError(f"{name}() takes {len(required)} positional arguments but {len(args)} were given")
        values = dict(zip(required, args))
        for key in list(kwargs):
            if key in values:
                raise TypeError(f"{name}() got multiple values for argument {key!r}")
            if key not in required and key not in optional and key not in _CALL_OPTIONS:
                raise TypeError(f"Got an unexpected keyword argument '{key}' to method {name}")
        values.update({k: v for k, v in kwargs.items() if k in required})
        for param in required:
            if values.get(param) is None:
                raise ValueError(f"Missing the required parameter `{param}` when calling `{name}`")
        path_values = {p: values[_py_name(p)] for p in op.path_params}
        query = {q: kwargs.get(_py_name(q)) for q in op.query_params}

        def call() -> Any:
            return self.api_client.call_api(
                op,
                path_values,
                query,
                values.get("body"),
                kwargs.get("_request_timeout"),
                kwargs.get("_preload_content", True),
                {f: kwargs.get(_py_name(f)) for f in op.form_params},
            )

        return AsyncResult(call) if kwargs.get("async_req") else call()

    params = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in required]
    params.append(inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD))
    method.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    method.__name__ = method.__qualname__ = name
    method.__doc__ = (
        f"{op.operation_id}: {op.method} {op.path} -> {op.response or 'object'}.\n\n"
        f"Optional keyword arguments: {', '.join(optional) or 'none'}; async_req=True returns "
        f"an object whose .get() gives the result."
    )
    return method


class CMLServiceApi:
    """The API v2 service client (``cmlapi.CMLServiceApi``)."""

    def __init__(self, api_client: ApiClient | None = None):
        self.api_client = api_client or ApiClient()


for _op in operations().values():
    setattr(CMLServiceApi, _op.name, _make_method(_op))


def default_client(url: str | None = None, cml_api_key: str | None = None) -> CMLServiceApi:
    """A client for ``url`` (bare workbench URL) with ``cml_api_key``; inside an engine, from its env.

    Raises:
        ValueError: no URL or key given and none in ``CDSW_API_URL`` / ``CDSW_APIV2_KEY``.
    """
    if url is None and os.environ.get("CDSW_API_URL"):
        url = re.sub(r"/api/v1/?$", "", os.environ["CDSW_API_URL"])
    if cml_api_key is None:
        cml_api_key = os.environ.get("CDSW_APIV2_KEY")
    if not url or not cml_api_key:
        raise ValueError(_MISSING)
    config = Configuration()
    config.host = url
    client = ApiClient(config)
    client.set_default_header("authorization", f"Bearer {cml_api_key}")
    return CMLServiceApi(client)
