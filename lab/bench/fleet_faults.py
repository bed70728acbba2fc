"""The fleet benchmark's disruptions, each with a client streaming UDP through the spine to a
Cluster-policy VIP and a Local-policy VIP (``lab.bench.traffic``):

- a rolling restart of every node as the chart's DaemonSet does it: one pod at a time (cosmolet
  and its FRR sidecar terminated together, the sidecar's FRR stopping once the BGP sessions have
  closed; graceful restart on), the next once the agent is ready (``/readyz``) and its leaf holds
  all its routes again, none of them a stale copy;
- a node falling silent (its BGP and BFD speakers and zebra frozen, its service addresses gone),
  with BFD on the leaves and without (the hold time): the spine's reroute and the packets lost.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from lab.bench.fleet_nodes import (
    Cluster,
    Node,
    fresh_routes,
    leaf_of,
    leaf_session,
    spine_complete,
)
from lab.bench.traffic import FibLog, Receivers, Sender, outcome
from lab.fabric import Fabric
from lab.netns import FrrRouter, wait_for
from lab.node import http_get

RATE = 200.0  # packets a second to each VIP
PORT = 5000
ROUTERS = ("spine", "leaf1", "leaf2")


@dataclass
class Probes:
    """The streams' receivers on every node and the FIB logs of the spine and the leaves."""

    fabric: Fabric
    cluster: Cluster
    nodes: list[Node]
    say: Callable[[str], None]
    vips: list[str] = field(init=False)  # [the Cluster VIP, the Local VIP]
    receivers: Receivers = field(init=False)
    fibs: dict[str, FibLog] = field(init=False)
    runs: int = 0

    def __post_init__(self) -> None:
        self.vips = [self.cluster.vip(0), self.cluster.vip(1)]
        self.receivers = Receivers(self.fabric.nodes, PORT)
        namespaces = (self.fabric.spine, *self.fabric.leaves)
        self.fibs = {
            name: FibLog(ns, self.vips) for name, ns in zip(ROUTERS, namespaces, strict=True)
        }

    def stream(self) -> Sender:
        """A new run of both streams, once both arrive somewhere."""
        self.runs += 1
        sender = Sender(self.fabric.client, self.vips, PORT, RATE, self.runs)
        wait_for(
            lambda: all(self.receivers.stream(sender.run, s).seen for s in (0, 1)),
            20,
            what="both UDP streams arriving at a node",
        )
        return sender

    def finish(self, sender: Sender) -> list[dict[str, Any]]:
        """Stop the run; what became of each stream (Cluster VIP, Local VIP)."""
        sent = sender.stop()
        time.sleep(0.3)  # the last packets in flight
        return [outcome(sent[s], self.receivers.stream(sender.run, s), 1 / RATE) for s in (0, 1)]

    def fib_changes(self, router: str, since: float) -> int:
        return len(self.fibs[router].since(since))

    def close(self) -> None:
        for log in self.fibs.values():
            log.close()
        self.receivers.close()


def _neighbor(router: FrrRouter, peer: str) -> dict[str, Any]:
    found: dict[str, Any] = router.json(f"show bgp neighbors {peer} json").get(peer, {})
    return found


def _connections(router: FrrRouter, peer: str) -> int:
    return int(_neighbor(router, peer).get("connectionsEstablished", 0))


def _eor_received(router: FrrRouter, peer: str) -> bool:
    info = _neighbor(router, peer).get("gracefulRestartInfo", {}).get("ipv4Unicast", {})
    return bool(info.get("endOfRibStatus", {}).get("endOfRibRecv"))


def _spine_updates(fabric: Fabric) -> int:
    """UPDATEs the spine has received from the leaves."""
    spine = fabric.routers["spine"]
    return sum(
        int(_neighbor(spine, port).get("messageStats", {}).get("updatesRecv", 0))
        for port in ("eth1", "eth2")
    )


def _ready(node: Node) -> bool:
    return http_get(node.ns, "/readyz")[0] == 200


def _routes_back(fabric: Fabric, cluster: Cluster, node: Node, connections: int) -> bool:
    """A new session from the node, and every route of the node fresh at its leaf."""
    router = leaf_of(fabric, node)
    peer = node.leaf_peer(fabric.mode)
    if _connections(router, peer) <= connections:
        return False
    return fresh_routes(router, peer) == len(cluster.routes[node.index])


def rolling_restart(probes: Probes) -> dict[str, Any]:
    fabric, cluster = probes.fabric, probes.cluster
    sender = probes.stream()
    started, updates = time.monotonic(), _spine_updates(fabric)
    ready_s, back_s = [], []
    for node in probes.nodes:
        connections = _connections(leaf_of(fabric, node), node.leaf_peer(fabric.mode))
        restarted = time.monotonic()
        node.restart_pod()
        wait_for(partial(_ready, node), 120, 0.25, f"node{node.index} ready")
        ready_s.append(time.monotonic() - restarted)
        wait_for(
            partial(_routes_back, fabric, cluster, node, connections),
            120,
            0.1,
            f"node{node.index}'s routes fresh at its leaf",
        )
        back_s.append(time.monotonic() - restarted)
    time.sleep(1)
    streams = probes.finish(sender)
    elapsed = time.monotonic() - started
    eor = sum(_eor_received(leaf_of(fabric, n), n.leaf_peer(fabric.mode)) for n in probes.nodes)
    result = {
        "rolling_restart_s": round(elapsed, 1),
        "rolling_restart_node_ready_s": round(statistics.mean(ready_s), 2),
        "rolling_restart_node_routes_back_s": round(statistics.mean(back_s), 2),
        "rolling_restart_lost_packets": sum(s["lost"] for s in streams),
        "rolling_restart_sent_packets": sum(s["sent"] for s in streams),
        "rolling_restart_spine_route_changes": probes.fib_changes("spine", started),
        "rolling_restart_leaf_route_changes": sum(
            probes.fib_changes(leaf, started) for leaf in ("leaf1", "leaf2")
        ),
        "rolling_restart_spine_updates": _spine_updates(fabric) - updates,
        "rolling_restart_eor_received": eor,
    }
    probes.say(
        f"rolling restart of {len(probes.nodes)} pods in {result['rolling_restart_s']} s "
        f"(ready {result['rolling_restart_node_ready_s']} s, routes fresh "
        f"{result['rolling_restart_node_routes_back_s']} s per node): "
        f"{result['rolling_restart_lost_packets']} of {result['rolling_restart_sent_packets']} "
        f"packets lost, spine FIB changes {result['rolling_restart_spine_route_changes']}, "
        f"leaf FIB changes {result['rolling_restart_leaf_route_changes']}, UPDATEs to the spine "
        f"{result['rolling_restart_spine_updates']}; End-of-RIB seen from {eor} nodes"
    )
    return result


def bfd_off(fabric: Fabric) -> None:
    """The leaves stop asking BFD of their sessions (which stay up)."""
    for leaf in (1, 2):
        fabric.routers[f"leaf{leaf}"].vtysh(
            "configure terminal", f"router bgp {65100 + leaf}", "no neighbor fabric bfd"
        )


def _bfd_up(fabric: Fabric, node: Node) -> bool:
    sessions = leaf_of(fabric, node).json("show bfd peers json")
    return any(
        s.get("interface") == node.link.leaf_port and s.get("status") == "up" for s in sessions
    )


def _recovered(fabric: Fabric, cluster: Cluster, node: Node, spine: dict[str, int]) -> bool:
    found = leaf_session(fabric, node)
    if found.get("state") != "Established":
        return False
    return found.get("pfxRcd") == len(cluster.routes[node.index]) and spine_complete(fabric, spine)


def failover(probes: Probes, bfd: bool, spine: dict[str, int]) -> dict[str, Any]:
    """The node that receives the Local VIP's stream falls silent; the spine must move that VIP
    to the other rack (its other endpoint). Then the node comes back."""
    fabric, cluster, how = probes.fabric, probes.cluster, "bfd" if bfd else "hold"
    sender = probes.stream()
    time.sleep(1)
    node = probes.nodes[probes.receivers.stream(sender.run, 1).last_node - 1]
    leaf, local = f"leaf{node.link.leaf}", probes.vips[1]
    if bfd:
        wait_for(partial(_bfd_up, fabric, node), 30, 0.2, f"BFD up with node{node.index}")
    silenced = time.monotonic()
    node.silence(cluster.routes[node.index], stop=True)
    try:
        spine_change = wait_for(lambda: probes.fibs["spine"].since(silenced, local), 30, 0.002)
        wait_for(
            lambda: probes.receivers.stream(sender.run, 1).last_node != node.index,
            30,
            0.01,
            "the Local VIP's stream at its other endpoint",
        )
        time.sleep(1)
        streams = probes.finish(sender)
    finally:
        node.silence(cluster.routes[node.index], stop=False)
        back = time.monotonic()
    wait_for(partial(_recovered, fabric, cluster, node, spine), 120, 0.05, "the node back")
    leaf_change = probes.fibs[leaf].since(silenced, local)
    result = {
        f"failover_ms_{how}": round((spine_change[0].at - silenced) * 1000, 1),
        f"failover_leaf_ms_{how}": round((leaf_change[0].at - silenced) * 1000, 1)
        if leaf_change
        else None,
        f"failover_lost_packets_{how}": streams[1]["lost"],
        f"failover_gap_ms_{how}": streams[1]["longest_gap_ms"],
        f"failover_cluster_vip_lost_packets_{how}": streams[0]["lost"],
        f"failover_recovered_s_{how}": round(time.monotonic() - back, 1),
    }
    probes.say(
        f"node{node.index} silent, {'BFD 100 ms x 3' if bfd else 'no BFD (hold time 9 s)'}: "
        f"{leaf} moved the Local VIP after {result[f'failover_leaf_ms_{how}']} ms, the spine "
        f"after {result[f'failover_ms_{how}']} ms; {streams[1]['lost']} packets lost to it "
        f"(longest gap {streams[1]['longest_gap_ms']} ms), {streams[0]['lost']} to the Cluster "
        f"VIP; back in {result[f'failover_recovered_s_{how}']} s"
    )
    return result
