"""A read-only Kubernetes API for the scale benchmarks: lists served from pages encoded once,
watches held open, and the time each list's first page went out.

A real API server serves a list from its watch cache, so a page costs it little; the lab's
``lab.apiserver`` sorts and copies its whole store for every page, which is right for tests of
the protocol but would make a 100,000-Service list measure the lab instead of cosmolet (200
pages, each a copy of 100,000 objects). Here each page is bytes ready to send, in the order a
real server lists (by namespace, then name), ``PAGE`` objects each, with ``continue`` tokens;
the Node list holds this node. A watch answers with nothing until the server stops or its
``timeoutSeconds`` runs out, unless ``push`` sends it events (the soak's readiness flips).
"""

from __future__ import annotations

import contextlib
import json
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


class ListServer:
    """Serves ``objects`` (Services and EndpointSlices) and a Node named ``node_name``."""

    def __init__(self, objects: list[dict[str, Any]], node_name: str) -> None:
        node = {"kind": "Node", "metadata": {"name": node_name, "resourceVersion": "1"}}
        self.pages = {
            kind: _pages(kind, [o for o in objects if o["kind"] == kind])
            for kind in ("Service", "EndpointSlice")
        }
        self.pages["Node"] = _pages("Node", [node])
        #: kind -> monotonic time its first page was written
        self.first_page: dict[str, float] = {}
        self.last_page: dict[str, float] = {}
        self.watches: dict[str, list[Any]] = {kind: [] for kind in PATHS.values()}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @contextlib.contextmanager
    def serving(self, netns: str, kubeconfig: Path) -> Iterator[ListServer]:
        """Listen on 127.0.0.1 in ``netns`` (a lab node) and write a kubeconfig for it."""
        sock = socket_in_netns(netns, "127.0.0.1", 0)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self), bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        server.daemon_threads = True
        self._server = server
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{sock.getsockname()[1]}")
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.stopping.set()
            server.shutdown()
            server.server_close()

    def push(self, kind: str, event_type: str, obj: dict[str, Any]) -> int:
        """Send a watch event to every open watch of ``kind``; how many got it."""
        line = msgspec.json.encode({"type": event_type, "object": obj}) + b"\n"
        chunk = f"{len(line):x}\r\n".encode() + line + b"\r\n"
        sent = 0
        with self.lock:
            for writer in list(self.watches[kind]):
                try:
                    writer.write(chunk)
                    writer.flush()
                    sent += 1
                except OSError:
                    self.watches[kind].remove(writer)
        return sent

    def watching(self, kind: str) -> int:
        with self.lock:
            return len(self.watches[kind])


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
                self._watch(kind, float(query.get("timeoutSeconds", "300")))
            else:
                token = query.get("continue", "")
                index = int(token.split(":")[1]) // PAGE if token else 0
                self._send(200, lists.pages[kind][index])
                now = time.monotonic()
                lists.first_page.setdefault(kind, now)
                lists.last_page[kind] = now

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _watch(self, kind: str, timeout: float) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.flush()
            with lists.lock:
                lists.watches[kind].append(self.wfile)
            lists.stopping.wait(timeout)
            with lists.lock, contextlib.suppress(ValueError):
                lists.watches[kind].remove(self.wfile)
            with contextlib.suppress(OSError):
                self.wfile.write(b"0\r\n\r\n")
            self.close_connection = True

    return Handler
