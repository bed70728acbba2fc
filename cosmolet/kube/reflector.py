"""One resource kept in sync: list, then watch from the list's resourceVersion, until stopped.

- Bookmarks are requested and advance the resourceVersion, so a rewatch rarely replays anything.
- A watch that ends (server timeout, dropped connection) is resumed from the last version seen.
- ``410 Gone`` (the history was compacted) means relist; the sink replaces its cache *by diff*,
  so unchanged objects produce no route change at all.
- Errors of the API conversation back off exponentially with full jitter (0.5 s doubling to
  30 s), so a fleet of nodes does not stampede a recovering API server.
- A malformed object is delivered to the sink as ``Malformed`` and the watch goes on.
- A sink that raises is a bug in cosmolet, not a problem of the API server: retrying would
  relist forever and hide it, so ``run`` raises ``SinkError`` and the thread running it ends
  (its owner reports the dead thread).

A ``Reflector[T]`` is typed by its record: ``Kind[T]`` says what to list and decodes to ``T``,
and ``Sink[T]`` takes ``T`` records only.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Protocol

import msgspec
from kubernetes.client import ApiException

from cosmolet import logs
from cosmolet.engine.objects import EndpointSlice, Malformed, Node, RecordT, Service, decode_json
from cosmolet.kube.client import (
    InFlight,
    Kind,
    RawEvent,
    StatusOrBookmark,
    list_page,
    watch_lines,
)

log = logs.get("cosmolet.kube")

PAGE_SIZE = 500


class Gone(Exception):
    """The watch's resourceVersion is too old: relist."""


class WatchError(Exception):
    """The server ended a watch with an ERROR event other than 410."""


class SinkError(Exception):
    """The sink raised while taking objects: a bug, which ends the reflector's thread."""


class Sink(Protocol[RecordT]):
    """Where a reflector delivers one kind's objects, keyed ``namespace/name``. A (re)list is
    ``upsert`` per page, then ``prune`` of every key the list did not hold, so an unchanged
    object changes nothing."""

    def upsert(self, items: list[tuple[str, RecordT | Malformed]]) -> None: ...

    def prune(self, keep: set[str]) -> None: ...

    def delete(self, key: str) -> None: ...


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


class Reflector(Generic[RecordT]):
    """List-watch of one kind into its sink. ``run`` returns once ``stop`` is called (or raises
    ``SinkError``); ``stop`` also ends a request in progress, so the thread ends promptly."""

    def __init__(self, kind: Kind[RecordT], sink: Sink[RecordT]) -> None:
        self.kind = kind
        self.sink = sink
        self.stopping = threading.Event()
        self._in_flight = InFlight()
        self.synced = False
        self.connected = False
        self.failing_since: float | None = time.monotonic()
        self.relists = 0
        self.watch_restarts = 0
        self.errors = 0
        self.resource_version = ""

    def stop(self) -> None:
        self.stopping.set()
        self._in_flight.abort()

    def run(self) -> None:
        backoff = Backoff()
        while not self.stopping.is_set():
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
            except SinkError:
                raise
            except Exception as error:
                if self.stopping.is_set():
                    return  # stop() ended the request
                self.errors += 1
                self._set_connected(False)
                delay = backoff.next()
                log.warning(
                    "API request failed; retrying",
                    kind=self.kind.name,
                    error=_describe(error),
                    retry_in_s=round(delay, 2),
                )
                self.stopping.wait(delay)

    @contextlib.contextmanager
    def _delivering(self) -> Iterator[None]:
        try:
            yield
        except Exception as error:
            raise SinkError(f"the {self.kind.name} sink failed: {_describe(error)}") from error

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
                page = list_page(self.kind, PAGE_SIZE, token, self._in_flight)
            except ApiException as error:
                if error.status == 410 and token:
                    token = None  # the continue token expired: start the list again
                    seen, malformed = set(), 0
                    continue
                raise
            items = [decode_json(self.kind.record, raw) for raw in page.items or ()]
            del page.items
            seen.update(key for key, _ in items)
            malformed += sum(isinstance(record, Malformed) for _, record in items)
            with self._delivering():
                self.sink.upsert(items)
            token = page.metadata.continue_
            if not token:
                break
        with self._delivering():
            self.sink.prune(seen)
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
        lines = watch_lines(self.kind, self.resource_version, timeout, self._in_flight)
        with contextlib.closing(lines):
            for line in lines:
                self._set_connected(True)
                if self.stopping.is_set():
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
            raise WatchError(f"watch error {status.code} {status.reason}: {status.message}")
        key, record = decode_json(self.kind.record, event.object)
        if event.type == "DELETED":
            with self._delivering():
                self.sink.delete(key)
        elif event.type in ("ADDED", "MODIFIED"):
            with self._delivering():
                self.sink.upsert([(key, record)])
        else:
            log.warning("unknown watch event type", kind=self.kind.name, type=event.type)
        if not isinstance(record, Malformed):
            self.resource_version = record.metadata.resource_version or self.resource_version


#: Any of the three reflectors of the Kubernetes source.
AnyReflector = Reflector[Service] | Reflector[EndpointSlice] | Reflector[Node]


def _describe(error: Exception) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    text = str(error)
    return f"{type(error).__name__}: {text[:200]}" if text else type(error).__name__
