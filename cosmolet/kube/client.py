"""Requests to the API server through the official client, returning raw bytes, never models.

The official ``ApiClient`` does the work that matters (kubeconfig and in-cluster auth, TLS,
token refresh, the urllib3 pool) through ``param_serialize`` and ``call_api``; responses are
decoded by msgspec straight into ``cosmolet.objects`` records. The generated ``CoreV1Api``
methods are not used: each builds a pydantic validator for its signature on first call (~20 MB
for the three we would need), and their model objects cost kilobytes per Service.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from kubernetes import client, config
from kubernetes.watch.watch import iter_resp_lines

from cosmolet.engine.objects import EndpointSlice, Node, Record, Service

#: (connect, read) seconds; a watch's read timeout is its server-side timeout plus this.
CONNECT_TIMEOUT = 5.0
READ_SLACK = 15.0


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    """``--kubeconfig``, else ``KUBECONFIG``, else in-cluster, else ``~/.kube/config``."""
    path = kubeconfig or os.environ.get("KUBECONFIG")
    if path:
        return config.new_client_from_config(config_file=path)
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        configuration = client.Configuration()
        config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    return config.new_client_from_config()


class ListMeta(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    resource_version: str = ""
    continue_: str | None = msgspec.field(default=None, name="continue")


class RawList(msgspec.Struct, gc=False):
    metadata: ListMeta = ListMeta()
    items: list[msgspec.Raw] | None = None


class RawEvent(msgspec.Struct, gc=False):
    type: str
    object: msgspec.Raw


class EventMeta(msgspec.Struct, frozen=True, gc=False, rename="camel"):
    resource_version: str = ""


class StatusOrBookmark(msgspec.Struct, gc=False):
    """The object of an ERROR (a Status) or BOOKMARK event."""

    metadata: EventMeta = EventMeta()
    code: int = 0
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class Kind:
    """How to list and watch one resource, and what record it decodes to."""

    name: str
    record: type[Record]
    path: str
    params: dict[str, str]
    api: client.ApiClient


def kinds(api: client.ApiClient, node_name: str, service_selector: str) -> list[Kind]:
    service_params = {"labelSelector": service_selector} if service_selector else {}
    return [
        Kind("Service", Service, "/api/v1/services", service_params, api),
        Kind("EndpointSlice", EndpointSlice, "/apis/discovery.k8s.io/v1/endpointslices", {}, api),
        Kind("Node", Node, "/api/v1/nodes", {"fieldSelector": f"metadata.name={node_name}"}, api),
    ]


def _get(kind: Kind, params: dict[str, Any], read_timeout: float) -> Any:
    """GET ``kind.path`` with ``params``; the urllib3 response, its body not yet read.

    Raises:
        kubernetes.client.ApiException: for any status but 2xx.
    """
    request = kind.api.param_serialize(
        method="GET",
        resource_path=kind.path,
        query_params=list(params.items()),
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = kind.api.call_api(*request, _request_timeout=(CONNECT_TIMEOUT, read_timeout))
    if not 200 <= response.status <= 299:
        response.read()
        raise client.ApiException(http_resp=response)
    return response.response


def list_page(kind: Kind, limit: int, token: str | None) -> RawList:
    """One page of a list (raises ``kubernetes.client.ApiException`` on an HTTP error)."""
    params: dict[str, Any] = dict(kind.params, limit=limit)
    if token:
        params["continue"] = token
    response = _get(kind, params, 60.0)
    try:
        return msgspec.json.decode(response.data, type=RawList)
    finally:
        response.release_conn()


def watch_lines(kind: Kind, resource_version: str, timeout_seconds: int) -> Iterator[str]:
    """The lines of a watch from ``resource_version``, with bookmarks, until the server ends it."""
    params: dict[str, Any] = dict(
        kind.params,
        watch="true",
        resourceVersion=resource_version,
        allowWatchBookmarks="true",
        timeoutSeconds=timeout_seconds,
    )
    response = _get(kind, params, timeout_seconds + READ_SLACK)
    try:
        yield from iter_resp_lines(response)
    finally:
        response.release_conn()
