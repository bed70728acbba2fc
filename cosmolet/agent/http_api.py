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
import platform
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from cosmolet import __version__, logs
from cosmolet.agent.metrics import exabgp_version, since_epoch

if TYPE_CHECKING:
    from cosmolet.agent.reconciler import Agent

log = logs.get("cosmolet.http")


def version_info() -> dict[str, str]:
    import os

    return {
        "version": __version__,
        "gitCommit": os.environ.get("COSMOLET_GIT_COMMIT", "unknown"),
        "exabgp": exabgp_version(),
        "python": platform.python_version(),
    }


def status(agent: Agent) -> dict[str, Any]:
    """Peers and routes, read without locks (dict copies are atomic in CPython)."""
    now = agent.clock()
    peers = []
    by_prefix: dict[str, list[str]] = {}
    for name, rib in list(agent.speaker.peers.items()):
        advertised = rib.advertised.copy()
        for prefix in advertised:
            by_prefix.setdefault(prefix, []).append(name)
        peers.append(
            {
                "address": name,
                "interface": rib.session.interface or None,
                "state": str(rib.state),
                "since": _iso(since_epoch(rib.since, now)) if rib.since else None,
                "routes": len(advertised),
            }
        )
    desired = agent.speaker.desired.copy()
    routes = [
        {
            "prefix": route.prefix,
            "family": str(route.family),
            "services": list(route.services),
            "peers": sorted(by_prefix.get(route.prefix, [])),
        }
        for route in sorted(desired.values(), key=lambda route: route.sort_key)
    ]
    ready, reason = agent.ready()
    return {
        "node": agent.config.node_name,
        "ready": ready,
        "reason": reason,
        "bgpEnabled": agent.config.bgp.enabled,
        "peers": peers,
        "routes": routes,
    }


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
                self._send(200, generate_latest(agent.metrics.registry), CONTENT_TYPE_LATEST)
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

    def __init__(self, address: tuple[str, int], agent: Agent) -> None:
        import socket

        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.agent = agent


def serve(agent: Agent, host: str, port: int) -> ThreadingHTTPServer | None:
    """Start the endpoints in a daemon thread; ``None`` (and a log line) if the port is taken."""
    try:
        server = _Server((host, port), agent)
    except OSError as error:
        log.error("cannot serve HTTP endpoints", listen=f"{host}:{port}", error=str(error))
        return None
    threading.Thread(target=server.serve_forever, daemon=True, name="http").start()
    log.info("serving /healthz /readyz /metrics /version /status", listen=f"{host}:{port}")
    return server
