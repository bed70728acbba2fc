"""Requests to the API server through the official client, returning raw bytes, never models.

The client's generated methods are called with ``_preload_content=False`` so that responses
are decoded by msgspec straight into ``cosmolet.objects`` records: the client's model objects
would cost ~25 KB per Service.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import msgspec
from kubernetes import client, config
from kubernetes.watch.watch import iter_resp_lines

from cosmolet.objects import EndpointSlice, Node, Record, Service

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
    call: Callable[..., Any]
    params: dict[str, Any]


def kinds(api: client.ApiClient, node_name: str, service_selector: str) -> list[Kind]:
    core = client.CoreV1Api(api)
    discovery = client.DiscoveryV1Api(api)
    service_params = {"label_selector": service_selector} if service_selector else {}
    return [
        Kind("Service", Service, core.list_service_for_all_namespaces, service_params),
        Kind("EndpointSlice", EndpointSlice, discovery.list_endpoint_slice_for_all_namespaces, {}),
        Kind("Node", Node, core.list_node, {"field_selector": f"metadata.name={node_name}"}),
    ]


def list_page(kind: Kind, limit: int, token: str | None) -> RawList:
    """One page of a list (raises ``kubernetes.client.ApiException`` on an HTTP error)."""
    params = dict(kind.params, limit=limit)
    if token:
        params["_continue"] = token
    response = kind.call(**params, _preload_content=False, _request_timeout=(CONNECT_TIMEOUT, 60.0))
    try:
        return msgspec.json.decode(response.data, type=RawList)
    finally:
        response.release_conn()


def watch_lines(kind: Kind, resource_version: str, timeout_seconds: int) -> Iterator[str]:
    """The lines of a watch from ``resource_version``, with bookmarks, until the server ends it."""
    response = kind.call(
        **kind.params,
        watch=True,
        resource_version=resource_version,
        allow_watch_bookmarks=True,
        timeout_seconds=timeout_seconds,
        _preload_content=False,
        _request_timeout=(CONNECT_TIMEOUT, timeout_seconds + READ_SLACK),
    )
    try:
        yield from iter_resp_lines(response)
    finally:
        response.release_conn()
