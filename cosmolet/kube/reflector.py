"""One resource kept in sync: list, then watch from the list's resourceVersion, forever.

- Bookmarks are requested and advance the resourceVersion, so a rewatch rarely replays anything.
- A watch that ends (server timeout, dropped connection) is resumed from the last version seen.
- ``410 Gone`` (the history was compacted) means relist; the handler replaces its cache *by diff*,
  so unchanged objects produce no route change at all.
- Errors back off exponentially with full jitter (0.5 s doubling to 30 s), so a fleet of nodes
  does not stampede a recovering API server.
- A malformed object is reported to the handler as ``Malformed`` and the watch goes on.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass
from typing import Protocol

import msgspec
from kubernetes.client import ApiException

from cosmolet import logs
from cosmolet.engine.objects import Malformed, ObjectMeta, Record, slim
from cosmolet.kube.client import Kind, RawEvent, StatusOrBookmark, list_page, watch_lines

log = logs.get("cosmolet.kube")

PAGE_SIZE = 500


class Gone(Exception):
    """The watch's resourceVersion is too old: relist."""


class Handler(Protocol):
    """Where a reflector delivers objects. A (re)list is ``upsert_many`` per page, then
    ``prune`` of every key the list did not hold, so an unchanged object changes nothing."""

    def upsert_many(self, kind: str, items: list[tuple[str, Record | Malformed]]) -> None: ...

    def prune(self, kind: str, keep: set[str]) -> None: ...

    def delete(self, kind: str, key: str) -> None: ...


class _Meta(msgspec.Struct, gc=False):
    metadata: ObjectMeta = ObjectMeta()


def object_key(meta: ObjectMeta) -> str:
    return f"{meta.namespace}/{meta.name}" if meta.namespace else meta.name


def decode_record(kind: Kind, raw: bytes | msgspec.Raw) -> tuple[str, Record | Malformed]:
    """Decode one object; a schema mismatch gives ``Malformed`` naming the field."""
    try:
        record = msgspec.json.decode(raw, type=kind.record)
    except msgspec.ValidationError as error:
        try:
            meta = msgspec.json.decode(raw, type=_Meta).metadata
        except msgspec.ValidationError:
            meta = ObjectMeta(name="?")
        key = object_key(meta)
        reason = str(error).replace("$.", "", 1)
        return key, Malformed(kind.name, key, reason)
    return object_key(record.metadata), slim(record)


@dataclass
class Backoff:
    base: float = 0.5
    cap: float = 30.0
    attempt: int = 0

    def next(self) -> float:
        delay = random.uniform(0, min(self.cap, self.base * 2**self.attempt))
        self.attempt += 1
        return max(delay, 0.05)

    def reset(self) -> None:
        self.attempt = 0


class Reflector:
    """List-watch of one kind into a handler. ``run`` returns only when ``stop`` is set."""

    def __init__(self, kind: Kind, handler: Handler, stop: threading.Event) -> None:
        self.kind = kind
        self.handler = handler
        self.stop = stop
        self.synced = False
        self.connected = False
        self.failing_since: float | None = time.monotonic()
        self.relists = 0
        self.watch_restarts = 0
        self.errors = 0
        self.resource_version = ""

    def run(self) -> None:
        backoff = Backoff()
        while not self.stop.is_set():
            try:
                if not self.resource_version:
                    self._list()
                    backoff.reset()
                self._watch()
                self.watch_restarts += 1
            except Gone:
                self.relists += 1
                log.info("watch expired (410): relisting", kind=self.kind.name)
                self.resource_version = ""
            except Exception as error:
                self.errors += 1
                self._set_connected(False)
                delay = backoff.next()
                log.warning(
                    "API request failed; retrying",
                    kind=self.kind.name,
                    error=_describe(error),
                    retry_in_s=round(delay, 2),
                )
                self.stop.wait(delay)

    def _set_connected(self, connected: bool) -> None:
        if connected and not self.connected:
            self.failing_since = None
        elif not connected and self.connected:
            self.failing_since = time.monotonic()
        self.connected = connected

    def _list(self) -> None:
        """List page by page, handing each page over at once: memory holds one page of raw
        objects, never the whole list."""
        seen: set[str] = set()
        malformed = 0
        token: str | None = None
        while True:
            try:
                page = list_page(self.kind, PAGE_SIZE, token)
            except ApiException as error:
                if error.status == 410 and token:
                    token = None  # the continue token expired: start the list again
                    seen, malformed = set(), 0
                    continue
                raise
            items = [decode_record(self.kind, raw) for raw in page.items or ()]
            del page.items
            seen.update(key for key, _ in items)
            malformed += sum(isinstance(record, Malformed) for _, record in items)
            self.handler.upsert_many(self.kind.name, items)
            token = page.metadata.continue_
            if not token:
                break
        self.handler.prune(self.kind.name, seen)
        self.resource_version = page.metadata.resource_version
        self._set_connected(True)
        self.synced = True
        log.info(
            "listed",
            kind=self.kind.name,
            objects=len(seen) - malformed,
            malformed=malformed,
            resource_version=self.resource_version,
        )

    def _watch(self) -> None:
        timeout = random.randint(240, 360)
        for line in watch_lines(self.kind, self.resource_version, timeout):
            self._set_connected(True)
            if self.stop.is_set():
                return
            try:
                event = msgspec.json.decode(line, type=RawEvent)
            except (msgspec.ValidationError, msgspec.DecodeError) as error:
                log.warning(
                    "skipping an undecodable watch line", kind=self.kind.name, error=str(error)
                )
                continue
            self._handle(event)

    def _handle(self, event: RawEvent) -> None:
        if event.type in ("BOOKMARK", "ERROR"):
            try:
                status = msgspec.json.decode(event.object, type=StatusOrBookmark)
            except (msgspec.ValidationError, msgspec.DecodeError):
                status = StatusOrBookmark()
            if event.type == "BOOKMARK":
                self.resource_version = status.metadata.resource_version or self.resource_version
                return
            if status.code == 410:
                raise Gone(status.message)
            raise RuntimeError(f"watch error {status.code} {status.reason}: {status.message}")
        key, record = decode_record(self.kind, event.object)
        if not isinstance(record, Malformed):
            self.resource_version = record.metadata.resource_version or self.resource_version
        if event.type == "DELETED":
            self.handler.delete(self.kind.name, key)
        elif event.type in ("ADDED", "MODIFIED"):
            self.handler.upsert_many(self.kind.name, [(key, record)])
        else:
            log.warning("unknown watch event type", kind=self.kind.name, type=event.type)


def _describe(error: Exception) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    text = str(error)
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
