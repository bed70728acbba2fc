"""A small in-memory Kubernetes API server for the lab, the demo and the integration tests.

There is no kube-apiserver here, so this one speaks the real wire protocol for the objects
cosmolet reads, and is itself tested with the official ``kubernetes`` client:

- core/v1 Services, Nodes, Namespaces and Events, discovery.k8s.io/v1 EndpointSlices;
- list (``resourceVersion``, ``limit``/``continue``, label and field selectors), get, create
  (``generateName`` too), update (409 on a stale ``resourceVersion``), merge and strategic-merge
  patch (as a JSON merge patch), delete, the ``/status`` subresource;
- watch as chunked JSON lines: ADDED / MODIFIED / DELETED, BOOKMARK when asked, and an ERROR
  event with a 410 ``Expired`` Status for a resourceVersion older than the retained history;
- discovery (``/api``, ``/apis``, ``/api/v1``, ``/apis/discovery.k8s.io/v1``, ``/version``).

For fault tests: ``POST /lab/drop-watches`` closes every watch, ``POST /lab/compact`` forgets the
history (the next rewatch from an old resourceVersion gets 410), and ``--state FILE`` saves the
objects on exit and loads them on start, so a restart keeps the cluster but not its history.

``--listen-netns NS`` also serves on 127.0.0.1 inside network namespace NS (the lab's nodes),
so one server and one kubeconfig serve the host and every node.

    python -m lab.apiserver --port 0 --kubeconfig /tmp/kubeconfig [--listen-netns NS ...]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import ctypes
import json
import os
import queue
import random
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from cosmolet.engine.selector import parse_selector

if TYPE_CHECKING:
    from lab.netns import Lab

JSON = dict[str, Any]
CLONE_NEWNET = 0x40000000


@dataclass(frozen=True)
class Resource:
    group: str  # "" for core
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()


RESOURCES = [
    Resource("", "v1", "services", "Service", True, ("svc",)),
    Resource("", "v1", "nodes", "Node", False, ("no",)),
    Resource("", "v1", "namespaces", "Namespace", False, ("ns",)),
    Resource("", "v1", "events", "Event", True, ("ev",)),
    Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", True),
]
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]


class ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> JSON:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


@dataclass
class Event:
    rv: int
    resource: Resource
    type: str
    obj: JSON


@dataclass
class Watcher:
    resource: Resource
    namespace: str | None
    label_selector: Any
    field_selector: list[tuple[str, str, str]]
    events: queue.Queue[Event | None] = field(default_factory=queue.Queue)


class Store:
    """Objects by (plural, namespace, name), a global resourceVersion, and a bounded history."""

    def __init__(self, history: int = 100_000) -> None:
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], JSON] = {}
        self.rv = 1
        self.history: deque[Event] = deque(maxlen=history)
        self.compacted_rv = 1  # watches from a resourceVersion below this get 410
        self.watchers: list[Watcher] = []

    # --- persistence ------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        with self.lock:
            data = {"rv": self.rv, "objects": list(self.objects.values())}
        path.write_text(json.dumps(data))

    def load(self, path: Path) -> None:
        data = json.loads(path.read_text())
        with self.lock:
            self.rv = int(data["rv"]) + 1
            self.compacted_rv = self.rv + 1  # a restart keeps the objects, not the history
            for obj in data["objects"]:
                resource = self._resource_of(obj)
                meta = obj["metadata"]
                self.objects[(resource.plural, meta.get("namespace", ""), meta["name"])] = obj

    def _resource_of(self, obj: JSON) -> Resource:
        for resource in RESOURCES:
            if resource.kind == obj.get("kind"):
                return resource
        raise ValueError(f"unknown kind {obj.get('kind')!r}")

    # --- reads ------------------------------------------------------------------------------

    def get(self, resource: Resource, namespace: str, name: str) -> JSON:
        with self.lock:
            obj = self.objects.get((resource.plural, namespace, name))
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource.plural} "{name}" not found')
            return copy.deepcopy(obj)

    def list_objects(
        self,
        resource: Resource,
        namespace: str | None,
        label_selector: Any,
        field_selector: list[tuple[str, str, str]],
    ) -> tuple[list[JSON], int]:
        with self.lock:
            items = [
                obj
                for (plural, ns, _), obj in sorted(self.objects.items())
                if plural == resource.plural
                and (namespace is None or ns == namespace)
                and matches(obj, label_selector, field_selector)
            ]
            return copy.deepcopy(items), self.rv

    # --- writes -----------------------------------------------------------------------------

    def _commit(self, resource: Resource, kind: str, obj: JSON) -> JSON:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        event = Event(self.rv, resource, kind, copy.deepcopy(obj))
        self.history.append(event)
        if len(self.history) == self.history.maxlen:
            self.compacted_rv = self.history[0].rv
        for watcher in list(self.watchers):
            if watcher.resource == resource and _watch_matches(watcher, event.obj):
                watcher.events.put(event)
        return copy.deepcopy(obj)

    def create(self, resource: Resource, namespace: str, obj: JSON) -> JSON:
        obj = copy.deepcopy(obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise ApiError(400, "BadRequest", "metadata must be an object")
        if not meta.get("name") and meta.get("generateName"):
            suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
            meta["name"] = f"{meta['generateName']}{suffix}"
        name = meta.get("name")
        if not isinstance(name, str) or not name:
            raise ApiError(422, "Invalid", "metadata.name: Required value")
        if resource.namespaced:
            meta["namespace"] = namespace
        obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
        with self.lock:
            key = (resource.plural, namespace if resource.namespaced else "", name)
            if key in self.objects:
                raise ApiError(409, "AlreadyExists", f'{resource.plural} "{name}" already exists')
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = meta.get("creationTimestamp") or _now()
            self.objects[key] = obj
            return self._commit(resource, "ADDED", obj)

    def update(self, resource: Resource, namespace: str, name: str, obj: JSON) -> JSON:
        with self.lock:
            key = (resource.plural, namespace if resource.namespaced else "", name)
            current = self.objects.get(key)
            if current is None:
                raise ApiError(404, "NotFound", f'{resource.plural} "{name}" not found')
            obj = copy.deepcopy(obj)
            meta = obj.setdefault("metadata", {})
            wanted = meta.get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise ApiError(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {resource.plural} "{name}"'
                    ": the object has been modified",
                )
            meta["name"] = name
            if resource.namespaced:
                meta["namespace"] = namespace
            for kept in ("uid", "creationTimestamp"):
                meta[kept] = current["metadata"].get(kept)
            obj["kind"], obj["apiVersion"] = resource.kind, resource.api_version
            self.objects[key] = obj
            return self._commit(resource, "MODIFIED", obj)

    def patch(self, resource: Resource, namespace: str, name: str, patch: Any) -> JSON:
        with self.lock:
            current = self.get(resource, namespace, name)
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            patched = merge_patch(current, patch)
            patched.setdefault("metadata", {}).pop("resourceVersion", None)
            return self.update(resource, namespace, name, patched)

    def delete(self, resource: Resource, namespace: str, name: str) -> JSON:
        with self.lock:
            key = (resource.plural, namespace if resource.namespaced else "", name)
            obj = self.objects.pop(key, None)
            if obj is None:
                raise ApiError(404, "NotFound", f'{resource.plural} "{name}" not found')
            return self._commit(resource, "DELETED", obj)

    # --- watches ----------------------------------------------------------------------------

    def watch(self, watcher: Watcher, since: str | None) -> list[Event]:
        """Register a watcher; return the events it must see first (history or current state)."""
        with self.lock:
            if since in (None, "", "0"):
                backlog = [
                    Event(self.rv, watcher.resource, "ADDED", copy.deepcopy(obj))
                    for (plural, _, _), obj in sorted(self.objects.items())
                    if plural == watcher.resource.plural and _watch_matches(watcher, obj)
                ]
            else:
                try:
                    start = int(since)
                except ValueError:
                    raise ApiError(
                        400, "BadRequest", f"invalid resourceVersion {since!r}"
                    ) from None
                if start < self.compacted_rv - 1:
                    raise ApiError(
                        410, "Expired", f"too old resource version: {start} ({self.compacted_rv})"
                    )
                backlog = [
                    event
                    for event in self.history
                    if event.rv > start
                    and event.resource == watcher.resource
                    and _watch_matches(watcher, event.obj)
                ]
            self.watchers.append(watcher)
            return backlog

    def unwatch(self, watcher: Watcher) -> None:
        with self.lock, contextlib.suppress(ValueError):
            self.watchers.remove(watcher)

    def drop_watches(self) -> int:
        with self.lock:
            watchers, self.watchers = self.watchers, []
        for watcher in watchers:
            watcher.events.put(None)
        return len(watchers)

    def compact(self) -> None:
        with self.lock:
            self.history.clear()
            self.compacted_rv = self.rv + 1


def parse_field_selector(text: str) -> list[tuple[str, str, str]]:
    requirements = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        for op in ("!=", "==", "="):
            if op in part:
                key, value = part.split(op, 1)
                requirements.append((key.strip(), "!=" if op == "!=" else "=", value.strip()))
                break
        else:
            raise ApiError(400, "BadRequest", f"invalid field selector {part!r}")
    return requirements


def _field(obj: JSON, path: str) -> str:
    value: Any = obj
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "" if value is None else str(value)


def matches(obj: JSON, label_selector: Any, fields: list[tuple[str, str, str]]) -> bool:
    if label_selector is not None and not label_selector.matches(
        obj.get("metadata", {}).get("labels") or {}
    ):
        return False
    for key, op, value in fields:
        actual = _field(obj, key)
        if (actual == value) != (op == "="):
            return False
    return True


def _watch_matches(watcher: Watcher, obj: JSON) -> bool:
    namespace = obj.get("metadata", {}).get("namespace", "")
    if watcher.namespace is not None and namespace != watcher.namespace:
        return False
    return matches(obj, watcher.label_selector, watcher.field_selector)


def discovery(resources: list[Resource], group: str, version: str) -> JSON:
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [
            {
                "name": r.plural,
                "singularName": r.singular,
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": VERBS,
                **({"shortNames": list(r.short_names)} if r.short_names else {}),
            }
            for r in resources
            if r.group == group and r.version == version
        ]
        + [
            {
                "name": f"{r.plural}/status",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": r.kind,
                "verbs": ["get", "patch", "update"],
            }
            for r in resources
            if r.group == group and r.version == version and r.plural == "services"
        ],
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this, Nagle and the client's delayed ACK
    # hold every response of a keep-alive connection for 40 ms (measured: 23 requests a second).
    disable_nagle_algorithm = True
    server: LabServer

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("LAB_APISERVER_VERBOSE"):
            super().log_message(format, *args)

    # --- plumbing ---------------------------------------------------------------------------

    def _send(self, code: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> Any:
        raw = self._raw_body
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            try:
                import yaml

                return yaml.safe_load(raw)
            except Exception:
                raise ApiError(400, "BadRequest", "body is neither JSON nor YAML") from None

    def _dispatch(self, method: str) -> None:
        # Read the body whatever the method (kubectl sends DeleteOptions with a DELETE): bytes
        # left unread would be parsed as the next request on this keep-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(length) if length else b""
        try:
            self._route(method)
        except ApiError as error:
            self._send(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    # --- routing ----------------------------------------------------------------------------

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        query = {key: values[-1] for key, values in parse_qs(url.query).items()}
        parts = [p for p in url.path.split("/") if p]
        store = self.server.store
        if parts == ["version"]:
            self._send(
                200,
                {
                    "major": "1",
                    "minor": "30",
                    "gitVersion": "v1.30.0-cosmolet-lab",
                    "platform": "linux/amd64",
                },
            )
            return
        if parts[:1] == ["lab"] and method == "POST":
            if parts[1:] == ["drop-watches"]:
                self._send(200, {"dropped": store.drop_watches()})
            elif parts[1:] == ["compact"]:
                store.compact()
                self._send(200, {"compactedBelow": store.compacted_rv})
            else:
                raise ApiError(404, "NotFound", "no such lab action")
            return
        if parts == ["api"]:
            self._send(
                200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
            )
            return
        if parts == ["apis"]:
            groups = sorted({r.group for r in RESOURCES if r.group})
            self._send(
                200,
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [
                        {
                            "name": g,
                            "versions": [{"groupVersion": f"{g}/v1", "version": "v1"}],
                            "preferredVersion": {"groupVersion": f"{g}/v1", "version": "v1"},
                        }
                        for g in groups
                    ],
                },
            )
            return
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 3:
            group, version, rest = parts[1], parts[2], parts[3:]
        elif parts[:1] == ["apis"] and len(parts) == 2:
            self._send(
                200,
                {
                    "kind": "APIGroup",
                    "apiVersion": "v1",
                    "name": parts[1],
                    "versions": [{"groupVersion": f"{parts[1]}/v1", "version": "v1"}],
                    "preferredVersion": {"groupVersion": f"{parts[1]}/v1", "version": "v1"},
                },
            )
            return
        else:
            raise ApiError(404, "NotFound", f"the server could not find {url.path}")
        if not rest:
            if not any(r.group == group and r.version == version for r in RESOURCES):
                raise ApiError(404, "NotFound", f"no API {group}/{version}")
            self._send(200, discovery(RESOURCES, group, version))
            return

        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace, rest = rest[1], rest[2:]
        resource = BY_PATH.get((group, version, rest[0]))
        if resource is None:
            raise ApiError(404, "NotFound", f"the server could not find the resource {rest[0]}")
        name = rest[1] if len(rest) >= 2 else None
        subresource = rest[2] if len(rest) >= 3 else None
        if subresource not in (None, "status"):
            raise ApiError(404, "NotFound", f"no subresource {subresource}")
        ns_key = (namespace or "") if resource.namespaced else ""
        if resource.namespaced and name is not None and namespace is None:
            raise ApiError(404, "NotFound", f"{resource.plural} are namespaced")

        if method == "GET" and name is None:
            label = parse_selector(query["labelSelector"]) if query.get("labelSelector") else None
            fields = parse_field_selector(query.get("fieldSelector", ""))
            scope = namespace if resource.namespaced else None
            if query.get("watch") in ("true", "1"):
                self._watch(resource, scope, label, fields, query)
            else:
                self._list(resource, scope, label, fields, query)
        elif method == "GET":
            self._send(200, store.get(resource, ns_key, name or ""))
        elif method == "POST" and name is None:
            body = self._body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "expected an object")
            self._send(201, store.create(resource, ns_key, body))
        elif method == "PUT" and name:
            body = self._body()
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "expected an object")
            if subresource == "status":
                current = store.get(resource, ns_key, name)
                current["status"] = body.get("status")
                body = current
            self._send(200, store.update(resource, ns_key, name, body))
        elif method == "PATCH" and name:
            content_type = (self.headers.get("Content-Type") or "").split(";")[0]
            if content_type not in (
                "application/merge-patch+json",
                "application/strategic-merge-patch+json",
            ):
                raise ApiError(415, "UnsupportedMediaType", f"unsupported patch {content_type!r}")
            patch = self._body()
            if subresource == "status" and isinstance(patch, dict):
                patch = {"status": patch.get("status")}
            self._send(200, store.patch(resource, ns_key, name, patch))
        elif method == "DELETE" and name:
            self._send(200, store.delete(resource, ns_key, name))
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} not allowed here")

    def _list(
        self,
        resource: Resource,
        namespace: str | None,
        label: Any,
        fields: list[tuple[str, str, str]],
        query: dict[str, str],
    ) -> None:
        items, rv = self.server.store.list_objects(resource, namespace, label, fields)
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
        self._send(
            200,
            {
                "kind": f"{resource.kind}List",
                "apiVersion": resource.api_version,
                "metadata": metadata,
                "items": items[start:end],
            },
        )

    def _watch(
        self,
        resource: Resource,
        namespace: str | None,
        label: Any,
        fields: list[tuple[str, str, str]],
        query: dict[str, str],
    ) -> None:
        store = self.server.store
        watcher = Watcher(resource, namespace, label, fields)
        try:
            backlog = store.watch(watcher, query.get("resourceVersion"))
        except ApiError as error:
            if error.code != 410:
                raise
            self._start_stream()
            self._chunk({"type": "ERROR", "object": error.status()})
            self._end_stream()
            return
        timeout = float(query.get("timeoutSeconds") or 1800)
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        deadline = time.monotonic() + timeout
        self._start_stream()
        try:
            for old in backlog:
                self._chunk({"type": old.type, "object": old.obj})
            next_bookmark = time.monotonic() + self.server.bookmark_seconds
            while time.monotonic() < deadline and not self.server.stopping.is_set():
                try:
                    event = watcher.events.get(timeout=0.2)
                except queue.Empty:
                    if bookmarks and time.monotonic() >= next_bookmark:
                        next_bookmark = time.monotonic() + self.server.bookmark_seconds
                        self._chunk(
                            {
                                "type": "BOOKMARK",
                                "object": {
                                    "kind": resource.kind,
                                    "apiVersion": resource.api_version,
                                    "metadata": {"resourceVersion": str(store.rv)},
                                },
                            }
                        )
                    continue
                if event is None:  # dropped
                    break
                self._chunk({"type": event.type, "object": event.obj})
            self._end_stream()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            store.unwatch(watcher)
            self.close_connection = True

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, event: JSON) -> None:
        data = json.dumps(event).encode() + b"\n"
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class LabServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sock: socket.socket, store: Store, bookmark_seconds: float) -> None:
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.store = store
        self.bookmark_seconds = bookmark_seconds
        self.stopping = threading.Event()


def _socket_in_netns(netns: str | None, host: str, port: int) -> socket.socket:
    """A listening socket in the named network namespace (``None``: ours).

    ``setns`` changes the namespace of the calling thread only, so a helper thread makes the
    socket there; the socket keeps its namespace when the thread ends.
    """
    result: list[socket.socket | BaseException] = []

    def make() -> None:
        try:
            if netns:
                libc = ctypes.CDLL(None, use_errno=True)
                with open(f"/run/netns/{netns}") as handle:
                    if libc.setns(handle.fileno(), CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns {netns}")
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port))
            sock.listen(128)
            result.append(sock)
        except BaseException as error:
            result.append(error)

    thread = threading.Thread(target=make)
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def write_kubeconfig(path: Path, server: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": server}}],
        "users": [{"name": "lab", "user": {"token": "lab"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "lab"}}],
        "current-context": "lab",
    }
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(config, indent=2))
    os.replace(temporary, path)


@contextlib.contextmanager
def serving(
    port: int = 0,
    host: str = "127.0.0.1",
    netns: list[str] | None = None,
    store: Store | None = None,
    bookmark_seconds: float = 1.0,
) -> Iterator[tuple[Store, int]]:
    """Run the server in this process (threads) for in-process tests; yields (store, port)."""
    store = store or Store()
    first = _socket_in_netns(None, host, port)
    port = first.getsockname()[1]
    sockets = [first] + [_socket_in_netns(ns, host, port) for ns in netns or []]
    servers = [LabServer(sock, store, bookmark_seconds) for sock in sockets]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    try:
        yield store, port
    finally:
        for server in servers:
            server.stopping.set()
            server.shutdown()
            server.server_close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_host_apiserver(
    lab: Lab, port: int, kubeconfig: Path, state: Path, netns: str
) -> subprocess.Popen[bytes]:
    """``python -m lab.apiserver`` on the host's loopback and inside ``netns``; stopped by PID."""
    kubeconfig.unlink(missing_ok=True)
    log = open(lab.workdir / "apiserver.log", "ab")  # noqa: SIM115 - closed by the process
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lab.apiserver",
            "--port",
            str(port),
            "--kubeconfig",
            str(kubeconfig),
            "--listen-netns",
            netns,
            "--state",
            str(state),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    lab.processes.append(server)
    from lab.netns import wait_for

    wait_for(kubeconfig.exists, 10, what="the lab API server's kubeconfig")
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lab.apiserver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=0, help="0: pick a free port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--kubeconfig", type=Path, help="write a kubeconfig for this server here")
    parser.add_argument(
        "--listen-netns",
        action="append",
        default=[],
        metavar="NS",
        help="also listen on HOST:PORT inside this network namespace",
    )
    parser.add_argument("--state", type=Path, help="load objects from / save them to this file")
    parser.add_argument("--bookmark-seconds", type=float, default=1.0)
    parser.add_argument(
        "--history",
        type=int,
        default=100_000,
        help="events kept for rewatching; older resourceVersions get 410",
    )
    args = parser.parse_args(argv)

    store = Store(args.history)
    if args.state and args.state.exists():
        store.load(args.state)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    with serving(args.port, args.host, args.listen_netns, store, args.bookmark_seconds) as (
        _,
        port,
    ):
        host = f"[{args.host}]" if ":" in args.host else args.host
        if args.kubeconfig:
            write_kubeconfig(args.kubeconfig, f"http://{host}:{port}")
        print(f"lab apiserver listening on http://{host}:{port}", flush=True)
        stop.wait()
    if args.state:
        store.save(args.state)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
