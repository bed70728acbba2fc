"""A read-only Kubernetes API for the scale benchmarks: lists served from pages encoded once,
watches held open, and the time each list's first page went out.

A real API server serves a list from its watch cache, so a page costs it little; the lab's
``lab.apiserver`` sorts and copies its whole store for every page, which is right for tests of
the protocol but would make a 100,000-Service list measure the lab instead of cosmolet (200
pages, each a copy of 100,000 objects). Here each page is bytes ready to send, in the order a
real server lists (by namespace, then name), ``PAGE`` objects each, with ``continue`` tokens;
the Node list holds this node. A watch answers with nothing until the server stops or its
``timeoutSeconds`` runs out, unless ``push`` sends it events (the soak's readiness flips); a
watch from a resourceVersion gets what was pushed after it first. It serves from a process of
its own, as a real API server would.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from lab.apiserver import write_kubeconfig
from lab.apiserver.listener import socket_in_netns

PAGE = 500
PATHS = {
    "/api/v1/services": "Service",
    "/apis/discovery.k8s.io/v1/endpointslices": "EndpointSlice",
    "/api/v1/nodes": "Node",
}


def _pages(kind: str, objects: list[dict[str, Any]]) -> list[bytes]:
    """The list of ``objects`` as pages of ``PAGE``, each JSON with its ``continue`` token."""
    ordered = sorted(
        objects, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
    )
    pages = []
    for start in range(0, max(len(ordered), 1), PAGE):
        metadata: dict[str, str] = {"resourceVersion": "1"}
        if start + PAGE < len(ordered):
            metadata["continue"] = f"{kind}:{start + PAGE}"
        items = ordered[start : start + PAGE]
        pages.append(
            msgspec.json.encode({"kind": f"{kind}List", "metadata": metadata, "items": items})
        )
    return pages


KINDS = ("Service", "EndpointSlice", "Node")


class ListServer:
    """Serves ``objects`` (Services and EndpointSlices) and a Node named ``node_name``, from a
    process of its own: in the benchmark's process its threads would wait for the GIL behind
    the benchmark's polling, which a real API server never does."""

    def __init__(self, objects: list[dict[str, Any]], node_name: str) -> None:
        node = {"kind": "Node", "metadata": {"name": node_name, "resourceVersion": "1"}}
        self.pages = {
            kind: _pages(kind, [o for o in objects if o["kind"] == kind])
            for kind in ("Service", "EndpointSlice")
        }
        self.pages["Node"] = _pages("Node", [node])
        context = multiprocessing.get_context("fork")
        self._context = context
        #: per kind, the monotonic times its first and its last page were written (0: not yet)
        self._times = context.Array("d", 2 * len(KINDS))
        self._watching = context.Array("i", len(KINDS))
        self._events: Any = context.SimpleQueue()  # (kind, chunk) for the open watches
        # in the serving process:
        self.watches: dict[str, list[Any]] = {kind: [] for kind in KINDS}
        self.history: list[tuple[str, int, bytes]] = []  # (kind, resourceVersion, chunk)
        self.lock = threading.Lock()

    @property
    def first_page(self) -> dict[str, float]:
        """Kind -> monotonic time its first page was written."""
        return {kind: t for kind, t in zip(KINDS, self._times[0::2], strict=True) if t}

    @property
    def last_page(self) -> dict[str, float]:
        return {kind: t for kind, t in zip(KINDS, self._times[1::2], strict=True) if t}

    @contextlib.contextmanager
    def serving(self, netns: str, kubeconfig: Path) -> Iterator[ListServer]:
        """Listen on 127.0.0.1 in ``netns`` (a lab node) and write a kubeconfig for it."""
        sock = socket_in_netns(netns, "127.0.0.1", 0)
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{sock.getsockname()[1]}")
        process = self._context.Process(target=self._serve, args=(sock,), daemon=True)
        process.start()
        sock.close()
        try:
            yield self
        finally:
            process.terminate()
            process.join(10)

    def _serve(self, sock: socket.socket) -> None:
        """The serving process: HTTP on ``sock``, and the events ``push`` queues."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self), bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.daemon_threads = True
        threading.Thread(target=self._pushing, daemon=True).start()
        server.serve_forever(0.05)

    def _pushing(self) -> None:
        while True:
            kind, version, chunk = self._events.get()
            with self.lock:
                self.history.append((kind, version, chunk))
                for writer in list(self.watches[kind]):
                    try:
                        writer.write(chunk)
                        writer.flush()
                    except OSError:
                        self._unwatch(kind, writer)

    def _watch(self, kind: str, writer: Any, since: int) -> None:
        """Register a watch from resourceVersion ``since``: what was pushed after it first (a
        watch ends at its timeout and the reflector resumes from the last version it saw)."""
        with self.lock:
            for pushed_kind, version, chunk in self.history:
                if pushed_kind == kind and version > since:
                    writer.write(chunk)
            writer.flush()
            self.watches[kind].append(writer)
            self._watching[KINDS.index(kind)] = len(self.watches[kind])

    def _unwatch(self, kind: str, writer: Any) -> None:
        """(with ``lock`` held)"""
        if writer in self.watches[kind]:
            self.watches[kind].remove(writer)
        self._watching[KINDS.index(kind)] = len(self.watches[kind])

    def _served(self, kind: str) -> None:
        index = 2 * KINDS.index(kind)
        now = time.monotonic()
        if not self._times[index]:
            self._times[index] = now
        self._times[index + 1] = now

    def push(self, kind: str, event_type: str, obj: dict[str, Any]) -> None:
        """Send a watch event to every open watch of ``kind``."""
        line = msgspec.json.encode({"type": event_type, "object": obj}) + b"\n"
        version = int(obj["metadata"]["resourceVersion"])
        self._events.put((kind, version, f"{len(line):x}\r\n".encode() + line + b"\r\n"))

    def watching(self, kind: str) -> int:
        """How many watches of ``kind`` are open."""
        return int(self._watching[KINDS.index(kind)])


def _handler(lists: ListServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the benchmark prints its own lines."""

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            kind = PATHS.get(url.path)
            query = {key: values[0] for key, values in parse_qs(url.query).items()}
            if kind is None:
                self._send(404, json.dumps({"kind": "Status", "code": 404}).encode())
            elif query.get("watch") in ("true", "1"):
                since = int(query.get("resourceVersion") or "0")
                self._watch(kind, float(query.get("timeoutSeconds", "300")), since)
            else:
                token = query.get("continue", "")
                index = int(token.split(":")[1]) // PAGE if token else 0
                self._send(200, lists.pages[kind][index])
                lists._served(kind)

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _watch(self, kind: str, timeout: float, since: int) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            lists._watch(kind, self.wfile, since)
            time.sleep(timeout)
            with lists.lock:
                lists._unwatch(kind, self.wfile)
            with contextlib.suppress(OSError):
                self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True

    return Handler
