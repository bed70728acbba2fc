"""The lab API server's HTTP plumbing: requests in, JSON replies and chunked watch streams out.

Routing and the answers themselves are in ``lab.apiserver.routes``; this module only reads a
request (all of its body, always), asks the guard (when serving TLS: ``lab.apiserver.auth``),
finds its route, and writes what the handler returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from lab.apiserver.auth import Guard
from lab.apiserver.resources import JSON, ApiError
from lab.apiserver.routes import Context, Request, Stream, resolve
from lab.apiserver.store import Store

HANDSHAKE_SECONDS = 10.0


@dataclass(frozen=True)
class Security:
    """How a server started with a TLS directory serves: its certificate, and who may ask."""

    context: ssl.SSLContext
    guard: Guard


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without this, Nagle and the client's delayed ACK
    # hold every response of a keep-alive connection for 40 ms (measured: 23 requests a second).
    disable_nagle_algorithm = True
    server: LabServer

    def log_message(self, format: str, *args: Any) -> None:
        if os.environ.get("LAB_APISERVER_VERBOSE"):
            super().log_message(format, *args)

    def handle(self) -> None:
        # A TLS client that closes without close_notify (Go's, often) makes the next read or
        # write raise this rather than BrokenPipeError: it went away, nobody is left to answer.
        with contextlib.suppress(ssl.SSLEOFError):
            super().handle()

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

    def _dispatch(self, method: str) -> None:
        # Read the body whatever the method (kubectl sends DeleteOptions with a DELETE): bytes
        # left unread would be parsed as the next request on this keep-alive connection.
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        try:
            url = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(url.query).items()}
            if self.server.security is not None:
                authorization = self.headers.get("Authorization")
                self.server.security.guard.check(method, url.path, query, authorization)
            route, params = resolve(method, url.path)
            request = Request(
                method=method,
                path=url.path,
                params=params,
                query=query,
                content_type=(self.headers.get("Content-Type") or "").split(";")[0],
                raw_body=raw_body,
                accept=self.headers.get("Accept") or "",
            )
            reply = route.handler(self.server.context, request)
            if isinstance(reply, Stream):
                self._stream(reply)
            else:
                self._send(*reply, warnings=request.warnings)
        except ApiError as error:
            self._send(error.code, error.status())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away: nobody is left to answer

    def _send(self, code: int, body: JSON, warnings: list[str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for warning in warnings or []:  # RFC 7234 form, as the real server sends them
            quoted = warning.replace("\\", "\\\\").replace('"', '\\"')
            self.send_header("Warning", f'299 - "{quoted}"')
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, stream: Stream) -> None:
        """Chunked transfer, one JSON event a line, as a watch is sent."""
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for event in stream.events:
                data = json.dumps(event).encode() + b"\n"
                chunk = f"{len(data):x}\r\n".encode() + data + b"\r\n"
                self.wfile.write(chunk)
                self.wfile.flush()
                stream.sent(str(event.get("type")), len(chunk))
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        finally:
            stream.close()
            if not stream.keep_alive:
                self.close_connection = True


class LabServer(ThreadingHTTPServer):
    """One listening socket (made by the caller, maybe in another netns) serving ``store``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        sock: socket.socket,
        store: Store,
        bookmark_seconds: float,
        security: Security | None = None,
    ) -> None:
        super().__init__(sock.getsockname()[:2], Handler, bind_and_activate=False)
        self.socket.close()
        self.socket = sock
        self.context = Context(store, bookmark_seconds, threading.Event())
        self.security = security

    def get_request(self) -> tuple[Any, Any]:
        """The accepted connection, wrapped for TLS; the handshake is left to its own thread
        (``finish_request``), so that a slow or foreign client cannot stall ``accept``."""
        sock, address = self.socket.accept()
        if self.security is not None:
            sock = self.security.context.wrap_socket(
                sock, server_side=True, do_handshake_on_connect=False
            )
        return sock, address

    def finish_request(self, request: Any, client_address: Any) -> None:
        if isinstance(request, ssl.SSLSocket):
            request.settimeout(HANDSHAKE_SECONDS)
            try:
                request.do_handshake()
            except (ssl.SSLError, OSError):
                return  # a client that does not trust our CA, or speaks plain HTTP
            request.settimeout(None)
        super().finish_request(request, client_address)

    def stop(self) -> None:
        """End open watches, stop serving, close the socket."""
        self.context.stopping.set()
        self.shutdown()
        self.server_close()
