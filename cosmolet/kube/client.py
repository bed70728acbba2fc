"""Requests to the API server through the official client, returning raw bytes, never models.

The official ``ApiClient`` does the work that matters (kubeconfig and in-cluster auth, TLS,
token refresh, the urllib3 pool) through ``param_serialize`` and ``call_api``; responses are
decoded by msgspec straight into ``cosmolet.engine.objects`` records. The generated
``CoreV1Api`` methods are not used: each builds a pydantic validator for its signature on first
call (~20 MB for the three we would need), and their model objects cost kilobytes per Service.

Every request reads its body through an ``InFlight``, so that stopping a reflector ends a quiet
watch at once instead of when the server next writes (a bookmark a minute, or its timeout).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, NamedTuple

import msgspec
from kubernetes import client, config
from kubernetes.watch.watch import iter_resp_lines

from cosmolet.engine.objects import EndpointSlice, Node, RecordT, Service

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
class Kind(Generic[RecordT]):
    """How to list and watch one resource, and the record type it decodes to."""

    record: type[RecordT]
    path: str
    params: dict[str, str]
    api: client.ApiClient

    @property
    def name(self) -> str:
        """The resource's kind, as in its objects' ``kind`` field: ``Service``."""
        return self.record.__name__


class Kinds(NamedTuple):
    """The three resources the Kubernetes source watches, each with its record type."""

    services: Kind[Service]
    slices: Kind[EndpointSlice]
    node: Kind[Node]


def kinds(api: client.ApiClient, node_name: str, service_selector: str) -> Kinds:
    service_params = {"labelSelector": service_selector} if service_selector else {}
    return Kinds(
        Kind(Service, "/api/v1/services", service_params, api),
        Kind(EndpointSlice, "/apis/discovery.k8s.io/v1/endpointslices", {}, api),
        Kind(Node, "/api/v1/nodes", {"fieldSelector": f"metadata.name={node_name}"}, api),
    )


class InFlight:
    """The response one reflector is reading. ``abort`` (from another thread) shuts its socket
    for reading, so the read ends now; a request that starts after ``abort`` ends at once too."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._response: Any = None
        self._aborted = False

    def abort(self) -> None:
        with self._lock:
            self._aborted = True
            if self._response is not None:
                _shut(self._response)

    @contextlib.contextmanager
    def reading(self, response: Any) -> Iterator[Any]:
        """Hold ``response`` (a urllib3 response, body unread) while it is read; release its
        connection afterwards. The lock keeps ``abort`` off a released connection."""
        with self._lock:
            self._response = response
            if self._aborted:
                _shut(response)
        try:
            yield response
        finally:
            with self._lock:
                self._response = None
            response.release_conn()


def _shut(response: Any) -> None:
    """End the reading of ``response`` now. A body read to its end has already handed its
    connection back to the pool (urllib3 does that): then there is nothing to end."""
    if response.connection is not None and not response.closed:
        response.shutdown()


@contextlib.contextmanager
def _get(
    kind: Kind[RecordT], params: dict[str, Any], read_timeout: float, in_flight: InFlight
) -> Iterator[Any]:
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
    with in_flight.reading(response.response) as body:
        yield body


def list_page(kind: Kind[RecordT], limit: int, token: str | None, in_flight: InFlight) -> RawList:
    """One page of a list (raises ``kubernetes.client.ApiException`` on an HTTP error)."""
    params: dict[str, Any] = dict(kind.params, limit=limit)
    if token:
        params["continue"] = token
    with _get(kind, params, 60.0, in_flight) as response:
        return msgspec.json.decode(response.data, type=RawList)


def watch_lines(
    kind: Kind[RecordT], resource_version: str, timeout_seconds: int, in_flight: InFlight
) -> Generator[str, None, None]:
    """The lines of a watch from ``resource_version``, with bookmarks, until the server ends it."""
    params: dict[str, Any] = dict(
        kind.params,
        watch="true",
        resourceVersion=resource_version,
        allowWatchBookmarks="true",
        timeoutSeconds=timeout_seconds,
    )
    with _get(kind, params, timeout_seconds + READ_SLACK, in_flight) as response:
        yield from iter_resp_lines(response)
