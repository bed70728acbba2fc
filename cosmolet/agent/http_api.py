"""The agent's HTTP endpoints, served from their own threads so that they never wait for the
reconciler (which may be blocked writing to a busy ExaBGP) and never block it.

- ``/healthz``: the agent's loops are alive. It fails only when a restart would help (the
  reconciler or the source stopped making progress), never because a BGP peer is down.
- ``/readyz``: the first cluster sync is done and the first plan was sent to ExaBGP.
- ``/metrics``: Prometheus exposition. ``/version``: build information as JSON.
- ``/status``: peers and routes as JSON, the data behind ``cosmolet status``.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from cosmolet import logs
from cosmolet.agent.view import AgentView
from cosmolet.version import version_info

log = logs.get("cosmolet.http")


def status(agent: AgentView) -> dict[str, Any]:
    """Peers and routes, from the agent's view (copies, no locks)."""
    now = agent.now()
    peers = []
    by_prefix: dict[str, list[str]] = {}
    for peer in agent.peers():
        for prefix in peer.advertised:
            by_prefix.setdefault(prefix, []).append(peer.name)
        peers.append(
            {
                "address": peer.name,
                "interface": peer.interface,
                "state": peer.state,
                "since": _iso(since_epoch(peer.since, now)) if peer.since else None,
                "routes": len(peer.advertised),
            }
        )
    routes = [
        {
            "prefix": route.prefix,
            "family": str(route.family),
            "services": list(route.services),
            "peers": sorted(by_prefix.get(route.prefix, [])),
        }
        for route in sorted(agent.desired(), key=lambda route: route.sort_key)
    ]
    ready, reason = agent.ready()
    return {
        "node": agent.node_name,
        "ready": ready,
        "reason": reason,
        "bgpEnabled": agent.bgp_enabled,
        "peers": peers,
        "routes": routes,
    }


def since_epoch(monotonic_value: float, clock_now: float) -> float:
    """A monotonic timestamp as Unix time, for ``/status``."""
    return time.time() - (clock_now - monotonic_value)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # scrapes and probes would flood the logs

    def _send(self, code: int, body: bytes, content_type: str = "text/plain") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, code: int, data: Any) -> None:
        self._send(code, json.dumps(data, indent=1).encode() + b"\n", "application/json")

    def do_GET(self) -> None:
        agent = self.server.agent
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                healthy, reason = agent.healthy()
                self._send(200 if healthy else 500, f"{reason}\n".encode())
            elif path == "/readyz":
                ready, reason = agent.ready()
                self._send(200 if ready else 503, f"{reason}\n".encode())
            elif path == "/metrics":
                self._send(200, generate_latest(self.server.registry), CONTENT_TYPE_LATEST)
            elif path == "/version":
                self._json(200, version_info())
            elif path == "/status":
                self._json(200, status(agent))
            else:
                self._send(404, b"not found: try /healthz /readyz /metrics /version /status\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as error:
            log.exception("HTTP handler failed", path=path)
            self._send(500, f"internal error: {type(error).__name__}\n".encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], agent: AgentView, registry: CollectorRegistry
    ) -> None:
        import socket

        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.agent = agent
        self.registry = registry


def serve(
    agent: AgentView, registry: CollectorRegistry, host: str, port: int
) -> ThreadingHTTPServer | None:
    """Start the endpoints in a daemon thread; ``None`` (and a log line) if the port is taken."""
    try:
        server = _Server((host, port), agent, registry)
    except OSError as error:
        log.error("cannot serve HTTP endpoints", listen=f"{host}:{port}", error=str(error))
        return None
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    log.info("serving /healthz /readyz /metrics /version /status", listen=f"{host}:{port}")
    return server
