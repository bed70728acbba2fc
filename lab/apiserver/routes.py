"""What the lab API server answers: a table of (method, path pattern) -> handler.

A handler takes the server's ``Context`` and the ``Request`` (with the pattern's ``{fields}``
filled in) and returns either ``(code, JSON body)`` or a ``Stream`` of JSON events (a watch).
The HTTP plumbing (``lab.apiserver.http``) finds the route, reads the body and writes the reply;
nothing here touches a socket, so adding an endpoint is one function and one row in ``ROUTES``.

Resource paths come in two prefixes, ``/api/{version}`` (core) and ``/apis/{group}/{version}``,
each namespaced (``.../namespaces/{namespace}/{plural}...``) or not. Patterns are tried in
order; the first whose path matches decides, and a method it does not list is 405.
Writes go through ``lab.apiserver.validation`` when they name a ``fieldValidation``; a handler
adds the warnings it wants sent to ``Request.warnings``. Authentication and RBAC happen before
any route is looked up (``lab.apiserver.http``), so no handler checks who is asking.
"""

from __future__ import annotations

import base64
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from lab.apiserver import openapi, resources, validation
from lab.apiserver.resources import BY_PATH, JSON, ApiError, Resource
from lab.apiserver.selectors import LabelSelector, parse_field_selector, parse_label_selector
from lab.apiserver.store import Event, Store, Watcher


@dataclass(frozen=True)
class Context:
    """What handlers may use of the server."""

    store: Store
    bookmark_seconds: float  # how often a watch that allows bookmarks gets one
    stopping: threading.Event  # set at shutdown: open watches end


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, str]  # the route pattern's {fields}
    query: dict[str, str]  # the last value of each query parameter
    content_type: str
    raw_body: bytes
    accept: str = ""
    warnings: list[str] = field(default_factory=list)  # sent as Warning headers with the reply

    def body(self) -> Any:
        """The body as JSON, or as YAML (kubectl may send either); None when empty."""
        if not self.raw_body:
            return None
        try:
            return json.loads(self.raw_body)
        except ValueError:
            try:
                return yaml.safe_load(self.raw_body)
            except yaml.YAMLError:
                raise ApiError(400, "BadRequest", "body is neither JSON nor YAML") from None

    def object_body(self) -> JSON:
        body = self.body()
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "expected an object")
        return body


@dataclass(frozen=True)
class Stream:
    """A chunked reply of JSON lines; ``close`` runs however it ends."""

    events: Iterable[JSON]
    close: Callable[[], None] = lambda: None
    keep_alive: bool = True  # False: close the connection after it (a watch)
    #: told of each event written: its type and the bytes it took on the connection
    sent: Callable[[str, int], None] = lambda _type, _size: None


Reply = tuple[int, JSON] | Stream
HandlerFn = Callable[[Context, Request], Reply]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # "/api/{version}/{plural}": literal segments and {fields}
    handler: HandlerFn
    segments: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "segments", tuple(p for p in self.pattern.split("/") if p))

    def match(self, parts: list[str]) -> dict[str, str] | None:
        """The pattern's fields if ``parts`` (the path's segments) fit it, else None."""
        if len(parts) != len(self.segments):
            return None
        params = {}
        for segment, part in zip(self.segments, parts, strict=True):
            if segment.startswith("{"):
                params[segment[1:-1]] = part
            elif segment != part:
                return None
        return params


def resolve(method: str, path: str) -> tuple[Route, dict[str, str]]:
    """The route for ``method`` on ``path`` and its fields; ApiError 404 or 405 if none."""
    parts = [p for p in path.split("/") if p]
    matched = [(route, params) for route in ROUTES if (params := route.match(parts)) is not None]
    if not matched:
        raise ApiError(404, "NotFound", f"the server could not find {path}")
    pattern = matched[0][0].pattern
    for route, params in matched:
        if route.pattern == pattern and route.method == method:
            return route, params
    raise ApiError(405, "MethodNotAllowed", f"{method} not allowed here")


# --- discovery and lab actions ----------------------------------------------------------------


def _drop_watches(context: Context, _: Request) -> Reply:
    return 200, {"dropped": context.store.drop_watches()}


def _compact(context: Context, _: Request) -> Reply:
    context.store.compact()
    return 200, {"compactedBelow": context.store.compacted_rv}


def _watch_stats(context: Context, _: Request) -> Reply:
    return 200, context.store.watch_stats()


def _group_version(_: Context, request: Request) -> Reply:
    return 200, resources.resource_list(request.params.get("group", ""), request.params["version"])


def _openapi_v2(_: Context, request: Request) -> Reply:
    """JSON only: a protobuf-only client (kubectl's validation fallback) gets 406."""
    accepted = {part.split(";")[0].strip() for part in (request.accept or "*/*").split(",")}
    if not accepted & {"application/json", "application/*", "*/*"}:
        raise ApiError(406, "NotAcceptable", "the OpenAPI v2 document is served as JSON only")
    return 200, openapi.v2_document()


def _openapi_v3(_: Context, request: Request) -> Reply:
    group = request.params.get("group")
    version = request.params["version"]
    return 200, openapi.v3_document(f"apis/{group}/{version}" if group else f"api/{version}")


# --- resources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """The resource a request names: its kind, namespace (None: all), name and subresource."""

    resource: Resource
    namespace: str | None
    name: str
    subresource: str | None

    @property
    def key(self) -> str:
        """The namespace the store files it under ("" for cluster-scoped kinds)."""
        return (self.namespace or "") if self.resource.namespaced else ""


def _target(request: Request) -> _Target:
    params = request.params
    resource = BY_PATH.get((params.get("group", ""), params["version"], params["plural"]))
    if resource is None:
        raise ApiError(
            404, "NotFound", f"the server could not find the resource {params['plural']}"
        )
    subresource = params.get("subresource")
    if subresource not in (None, "status"):
        raise ApiError(404, "NotFound", f"no subresource {subresource}")
    name, namespace = params.get("name", ""), params.get("namespace")
    if resource.namespaced and name and namespace is None:
        raise ApiError(404, "NotFound", f"{resource.plural} are namespaced")
    return _Target(resource, namespace, name, subresource)


def _list_or_watch(context: Context, request: Request) -> Reply:
    target = _target(request)
    query = request.query
    try:
        label = parse_label_selector(query["labelSelector"]) if query.get("labelSelector") else None
    except ValueError as error:
        raise ApiError(400, "BadRequest", f"labelSelector: {error}") from None
    fields = parse_field_selector(query.get("fieldSelector", ""))
    scope = target.namespace if target.resource.namespaced else None
    if query.get("watch") in ("true", "1"):
        return _watch(context, query, Watcher(target.resource, scope, label, fields))
    return _list(context.store, target.resource, scope, label, fields, query)


def _list(
    store: Store,
    resource: Resource,
    namespace: str | None,
    label: LabelSelector | None,
    fields: list[tuple[str, str, str]],
    query: dict[str, str],
) -> Reply:
    """One page; ``continue`` carries the list's resourceVersion and the next offset."""
    items, rv = store.list_objects(resource, namespace, label, fields)
    token = query.get("continue")
    start = 0
    if token:
        try:
            rv, start = (int(x) for x in base64.b64decode(token).decode().split(":"))
        except ValueError:
            raise ApiError(400, "BadRequest", "invalid continue token") from None
    limit = int(query.get("limit") or 0)
    end = start + limit if limit else len(items)
    metadata: JSON = {"resourceVersion": str(rv)}
    if end < len(items):
        metadata["continue"] = base64.b64encode(f"{rv}:{end}".encode()).decode()
    return 200, {
        "kind": f"{resource.kind}List",
        "apiVersion": resource.api_version,
        "metadata": metadata,
        "items": items[start:end],
    }


def _watch(context: Context, query: dict[str, str], watcher: Watcher) -> Reply:
    """A watch; from a resourceVersion older than the history, one ERROR event with 410."""
    store = context.store
    try:
        backlog = store.watch(watcher, query.get("resourceVersion"))
    except ApiError as error:
        if error.code != 410:
            raise
        return Stream(
            [{"type": "ERROR", "object": error.status()}],
            sent=lambda kind, size: store.record_sent(None, kind, size),
        )
    deadline = time.monotonic() + float(query.get("timeoutSeconds") or 1800)
    bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
    return Stream(
        _watch_events(context, watcher, backlog, deadline, bookmarks),
        close=lambda: store.unwatch(watcher),
        keep_alive=False,
        sent=lambda kind, size: store.record_sent(watcher, kind, size),
    )


def _watch_events(
    context: Context, watcher: Watcher, backlog: list[Event], deadline: float, bookmarks: bool
) -> Iterator[JSON]:
    """The backlog, then live events (and BOOKMARKs when asked) until the deadline or a drop."""
    resource = watcher.resource
    for old in backlog:
        yield {"type": old.type, "object": old.obj}
    next_bookmark = time.monotonic() + context.bookmark_seconds
    while time.monotonic() < deadline and not context.stopping.is_set():
        try:
            event = watcher.events.get(timeout=0.2)
        except queue.Empty:
            if bookmarks and time.monotonic() >= next_bookmark:
                next_bookmark = time.monotonic() + context.bookmark_seconds
                yield {
                    "type": "BOOKMARK",
                    "object": {
                        "kind": resource.kind,
                        "apiVersion": resource.api_version,
                        "metadata": {"resourceVersion": str(context.store.rv)},
                    },
                }
            continue
        if event is None:  # dropped
            return
        yield {"type": event.type, "object": event.obj}


def _validated(target: _Target, request: Request, body: Any, patch: bool = False) -> Any:
    """The body as the server keeps it under the request's ``fieldValidation``."""
    mode = request.query.get("fieldValidation")
    body, warnings = validation.validate(target.resource, body, mode, patch)
    request.warnings.extend(warnings)
    return body


def _create(context: Context, request: Request) -> Reply:
    target = _target(request)
    body = _validated(target, request, request.object_body())
    return 201, context.store.create(target.resource, target.key, body)


def _read(context: Context, request: Request) -> Reply:
    target = _target(request)
    return 200, context.store.get(target.resource, target.key, target.name)


def _replace(context: Context, request: Request) -> Reply:
    target = _target(request)
    body = _validated(target, request, request.object_body())
    if target.subresource == "status":
        current = context.store.get(target.resource, target.key, target.name)
        current["status"] = body.get("status")
        body = current
    return 200, context.store.update(target.resource, target.key, target.name, body)


def _patch(context: Context, request: Request) -> Reply:
    target = _target(request)
    if request.content_type not in (
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ):
        raise ApiError(415, "UnsupportedMediaType", f"unsupported patch {request.content_type!r}")
    patch = _validated(target, request, request.body(), patch=True)
    if target.subresource == "status" and isinstance(patch, dict):
        patch = {"status": patch.get("status")}
    return 200, context.store.patch(target.resource, target.key, target.name, patch)


def _delete(context: Context, request: Request) -> Reply:
    target = _target(request)
    return 200, context.store.delete(target.resource, target.key, target.name)


_COLLECTION: list[tuple[str, HandlerFn]] = [("GET", _list_or_watch), ("POST", _create)]
_OBJECT: list[tuple[str, HandlerFn]] = [
    ("GET", _read),
    ("PUT", _replace),
    ("PATCH", _patch),
    ("DELETE", _delete),
]
_RESOURCE_PATHS = [  # namespaced first: "/namespaces/x/services" is not namespace x's "services"
    ("/namespaces/{namespace}/{plural}", _COLLECTION),
    ("/namespaces/{namespace}/{plural}/{name}", _OBJECT),
    ("/namespaces/{namespace}/{plural}/{name}/{subresource}", _OBJECT),
    ("/{plural}", _COLLECTION),
    ("/{plural}/{name}", _OBJECT),
    ("/{plural}/{name}/{subresource}", _OBJECT),
]

ROUTES: list[Route] = [
    Route("GET", "/version", lambda _, __: (200, resources.version_info())),
    Route("POST", "/lab/drop-watches", _drop_watches),
    Route("POST", "/lab/compact", _compact),
    Route("GET", "/lab/watch-stats", _watch_stats),
    Route("GET", "/openapi/v2", _openapi_v2),
    Route("GET", "/openapi/v3", lambda _, __: (200, openapi.v3_index())),
    Route("GET", "/openapi/v3/api/{version}", _openapi_v3),
    Route("GET", "/openapi/v3/apis/{group}/{version}", _openapi_v3),
    Route("GET", "/api", lambda _, __: (200, resources.api_versions())),
    Route("GET", "/apis", lambda _, __: (200, resources.api_group_list())),
    Route("GET", "/apis/{group}", lambda _, r: (200, resources.api_group(r.params["group"]))),
    Route("GET", "/api/{version}", _group_version),
    Route("GET", "/apis/{group}/{version}", _group_version),
] + [
    Route(method, prefix + path, handler)
    for prefix in ("/api/{version}", "/apis/{group}/{version}")
    for path, verbs in _RESOURCE_PATHS
    for method, handler in verbs
]
