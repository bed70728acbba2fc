"""The agent's HTTP endpoints, served from their own threads so that they never wait for the
reconciler (which may be blocked writing to a busy ExaBGP) and never block it.

On ``http.listen`` (optionally TLS, ``http.tls``):

- ``/healthz``: the agent's loops are alive. It fails only when a restart would help (the
  reconciler or the source stopped making progress), never because a BGP peer is down.
- ``/readyz``: the first cluster sync is done and the first plan was sent to ExaBGP.
- ``/metrics``: Prometheus text, or OpenMetrics when the scraper's Accept header asks for it.
- ``/version``: build information as JSON.

On ``http.statusListen`` (the node's loopback by default), because it names every Service and
address the node advertises:

- ``/status``: peers (each with its origin: config entry, interface or gateway), how this node's
  peers were resolved (AS, router id, problems) and routes as JSON, the data behind
  ``cosmolet status``.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from cosmolet import logs
from cosmolet.agent.brake import brake_json
from cosmolet.agent.gate import gate_json
from cosmolet.agent.tls import ReloadingContext
from cosmolet.agent.view import AgentView
from cosmolet.config.schema import Http
from cosmolet.engine.model import route_json, route_share
from cosmolet.version import version_info

log = logs.get("cosmolet.http")

#: What each listener answers.
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/version"})
STATUS_PATHS = frozenset({"/status"})
#: A client that connects to the TLS port and says nothing must not hold a thread for long.
HANDSHAKE_SECONDS = 10.0


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
                "origin": peer.origin,
            }
        )
    # an aggregate's route names no Service, only how many (``route_json``): /status stays
    # bounded however many Services it covers
    routes = [
        {**route_json(route), "peers": sorted(by_prefix.get(route.prefix, []))}
        for route in sorted(agent.desired(), key=lambda route: route.sort_key)
    ]
    ready, reason = agent.ready()
    peering = agent.peering()
    return {
        "node": agent.node_name,
        "ready": ready,
        "reason": reason,
        "bgpEnabled": agent.bgp_enabled,
        "asn": peering.asn,
        "asnFrom": peering.asn_from,
        "routerId": peering.router_id,
        "routerIdFrom": peering.router_id_from,
        "peers": peers,
        # config entries this node cannot peer with (an interface without a /31, no default
        # route, a malformed annotation...), and those its labels leave out
        "peerProblems": [{"entry": e, "problem": m} for e, m in peering.problems],
        "peerEntriesUnused": [{"entry": e, "reason": m} for e, m in peering.unused],
        "share": route_share(agent.desired()),
        "routes": routes,
        "dataplaneGate": gate_json(agent.gate(), now),
        "withdrawBrake": brake_json(agent.brake(), now),
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
            if path not in self.server.paths:
                self._not_here(path)
            elif path == "/healthz":
                healthy, reason = agent.healthy()
                self._send(200 if healthy else 500, f"{reason}\n".encode())
            elif path == "/readyz":
                ready, reason = agent.ready()
                self._send(200 if ready else 503, f"{reason}\n".encode())
            elif path == "/metrics":
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(self.server.registry), content_type)
            elif path == "/version":
                self._json(200, version_info())
            elif path == "/status":
                self._json(200, status(agent))
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as error:
            log.exception("HTTP handler failed", path=path)
            self._send(500, f"internal error: {type(error).__name__}\n".encode())

    def _not_here(self, path: str) -> None:
        moved = self.server.moved.get(path)
        if moved is None:
            moved = "not found: try " + " ".join(sorted(self.server.paths))
        self._send(404, f"{moved}\n".encode())


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        agent: AgentView,
        registry: CollectorRegistry,
        paths: frozenset[str],
        moved: Mapping[str, str],
        tls: ReloadingContext | None,
    ) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, _Handler)
        self.agent = agent
        self.registry = registry
        self.paths = paths
        self.moved = moved
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        """With TLS, the handshake runs here, in the connection's own thread: a client that
        never finishes it holds that thread (for ``HANDSHAKE_SECONDS``), not the listener."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            request.settimeout(HANDSHAKE_SECONDS)
            secure = self.tls.current().wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:  # a plain-HTTP client, a scanner, a timeout
            log.debug("TLS handshake failed", client=str(client_address[0]), error=str(error))
            return
        try:
            secure.settimeout(None)
            super().finish_request(secure, client_address)
        finally:
            secure.close()


def serve(
    agent: AgentView,
    registry: CollectorRegistry,
    host: str,
    port: int,
    *,
    paths: frozenset[str],
    moved: Mapping[str, str] | None = None,
    tls: ReloadingContext | None = None,
) -> ThreadingHTTPServer | None:
    """Serve ``paths`` in a daemon thread; ``None`` (and a log line) if the port is taken.

    ``moved`` maps a path served elsewhere to the 404 body that says where.
    """
    try:
        server = _Server((host, port), agent, registry, paths, moved or {}, tls)
    except OSError as error:
        log.error("cannot serve HTTP endpoints", listen=f"{host}:{port}", error=str(error))
        return None
    threading.Thread(target=server.serve_forever, daemon=True, name=f"http-{port}").start()
    log.info("serving " + " ".join(sorted(paths)), listen=f"{host}:{port}", tls=tls is not None)
    return server


class Servers(NamedTuple):
    """The two listeners; ``None`` where one could not start (logged)."""

    public: ThreadingHTTPServer | None
    status: ThreadingHTTPServer | None


def start(agent: AgentView, registry: CollectorRegistry, http: Http) -> Servers:
    """Both listeners of ``http``. With ``http.tls`` whose files cannot be read, ``http.listen``
    is not served at all (logged): never plain HTTP where TLS was asked for."""
    status_host, status_port = http.status_host_port
    status_server = serve(agent, registry, status_host, status_port, paths=STATUS_PATHS)
    tls: ReloadingContext | None = None
    if http.tls is not None:
        try:
            tls = ReloadingContext(http.tls.cert_file, http.tls.key_file)
        except (OSError, ssl.SSLError) as error:
            log.error("cannot read http.tls: not serving http.listen", error=str(error))
            return Servers(None, status_server)
    where = (
        f"/status is served on http.statusListen ({http.status_listen}), not here: "
        "run `cosmolet status` on the node (kubectl exec)"
    )
    host, port = http.host_port
    public = serve(
        agent, registry, host, port, paths=PUBLIC_PATHS, moved={"/status": where}, tls=tls
    )
    return Servers(public, status_server)
