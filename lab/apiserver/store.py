"""The lab API server's state: objects, one global resourceVersion, the event history, watchers.

Every write bumps the resourceVersion, appends an event to a bounded history and hands it to the
matching watchers. A watch from an old resourceVersion replays the history after it; one older
than the retained history gets 410 Gone, which is how a real API server forces a relist and what
cosmolet's reflector must survive. ``compact()`` forgets the history on purpose (fault tests), and
``save``/``load`` keep the objects, not the history, across a restart.
"""

from __future__ import annotations

import contextlib
import copy
import json
import queue
import random
import string
import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lab.apiserver.resources import JSON, RESOURCES, ApiError, Resource
from lab.apiserver.selectors import LabelSelector, matches


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (also used for strategic merge patches: close enough here)."""
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
    """One committed change, as a watch sends it: ADDED, MODIFIED or DELETED."""

    rv: int
    resource: Resource
    type: str
    obj: JSON


@dataclass
class Sent:
    """What watches sent, by event type (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR): events, and
    bytes as written to the connection (each event's whole chunk: size line, JSON line, CRLF).
    The fleet benchmark reads it to show how a Service change fans out to every watching node."""

    events: dict[str, int] = field(default_factory=dict)
    bytes: dict[str, int] = field(default_factory=dict)

    def add(self, event_type: str, size: int) -> None:
        self.events[event_type] = self.events.get(event_type, 0) + 1
        self.bytes[event_type] = self.bytes.get(event_type, 0) + size

    def as_json(self) -> JSON:
        return {
            "events": sum(self.events.values()),
            "bytes": sum(self.bytes.values()),
            "byType": {
                kind: {"events": count, "bytes": self.bytes[kind]}
                for kind, count in sorted(self.events.items())
            },
        }


@dataclass
class Watcher:
    """One open watch: what it selects, and the queue its events go to (``None``: dropped)."""

    resource: Resource
    namespace: str | None
    label_selector: LabelSelector | None
    field_selector: list[tuple[str, str, str]]
    events: queue.Queue[Event | None] = field(default_factory=queue.Queue)
    id: int = 0  # given by ``Store.watch``
    sent: Sent = field(default_factory=Sent)

    def wants(self, obj: JSON) -> bool:
        namespace = obj.get("metadata", {}).get("namespace", "")
        if self.namespace is not None and namespace != self.namespace:
            return False
        return matches(obj, self.label_selector, self.field_selector)

    def stats(self) -> JSON:
        return {
            "id": self.id,
            "resource": self.resource.plural,
            "namespace": self.namespace,
            "fieldSelector": ",".join(f"{k}{op}{v}" for k, op, v in self.field_selector),
            **self.sent.as_json(),
        }


class Store:
    """Objects by (plural, namespace, name), a global resourceVersion, and a bounded history."""

    def __init__(self, history: int = 100_000) -> None:
        self.lock = threading.RLock()
        self.objects: dict[tuple[str, str, str], JSON] = {}
        self.rv = 1
        self.history: deque[Event] = deque(maxlen=history)
        self.compacted_rv = 1  # watches from a resourceVersion below this get 410
        self.watchers: list[Watcher] = []
        self.watches_opened = 0
        self.sent = Sent()  # by every watch, the closed ones too

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
        label_selector: LabelSelector | None,
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
            if watcher.resource == resource and watcher.wants(event.obj):
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
                    if plural == watcher.resource.plural and watcher.wants(obj)
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
                    and watcher.wants(event.obj)
                ]
            self.watches_opened += 1
            watcher.id = self.watches_opened
            self.watchers.append(watcher)
            return backlog

    def record_sent(self, watcher: Watcher | None, event_type: str, size: int) -> None:
        """Count one event written to a watch (``None``: a watch refused with an ERROR event)."""
        with self.lock:
            self.sent.add(event_type, size)
            if watcher is not None:
                watcher.sent.add(event_type, size)

    def watch_stats(self) -> JSON:
        """Events and bytes sent by all watches since the start, and by each open one."""
        with self.lock:
            return {
                "total": self.sent.as_json(),
                "watchesOpened": self.watches_opened,
                "watches": [watcher.stats() for watcher in self.watchers],
            }

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
