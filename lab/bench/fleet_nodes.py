"""The fleet benchmark's cluster and nodes (``lab.bench.fleet``).

The reference fabric (``lab.fabric``) with N nodes in two racks (the first half under leaf1, the
rest under leaf2, one link each), one lab API server as a process of its own holding S
LoadBalancer Services, and on each node ``cosmolet start`` (ExaBGP + agent) on the Kubernetes
source, with zebra and bfdd beside it in hybrid mode, as the chart's FRR sidecar runs them.

Service ``i`` has the load-balancer IP ``198.18.i/16`` (the benchmarking range) and two ready
endpoints, on nodes ``i mod N`` and ``i + N/2 mod N`` (counted from 0: one in each rack). Even
Services have ``externalTrafficPolicy: Cluster`` (every node advertises them), odd ones
``Local`` (only the two endpoints' nodes do). Each node holds on its loopback the addresses it
advertises, standing in for the CNI, so traffic that reaches a node proves it advertised.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any

from cosmolet.config.schema import validate
from cosmolet.hybrid import frr_config
from lab.apiserver import free_port
from lab.bench.common import _state_file
from lab.bench.fleet_objects import endpoint_slice, service_names
from lab.fabric import CLIENT_V4, Fabric, NodeLink, numbered_addresses
from lab.netns import FrrRouter, Lab, Namespace, wait_for
from lab.node import Cosmolet

#: node BFD as the leaves run it (lab.frr_configs: 100 ms x 3)
BFD = {"enabled": True, "minRxMs": 100, "minTxMs": 100, "multiplier": 3}


@dataclass(frozen=True)
class Cluster:
    """S Services over N nodes: who serves and who advertises what."""

    nodes: int
    services: int

    @staticmethod
    def vip(index: int) -> str:
        return f"198.18.{index // 256}.{index % 256}"

    @staticmethod
    def local(index: int) -> bool:
        return index % 2 == 1

    def endpoint_nodes(self, index: int) -> tuple[int, int]:
        """The two nodes (numbered from 1) that hold an endpoint of Service ``index``."""
        return index % self.nodes + 1, (index + self.nodes // 2) % self.nodes + 1

    def advertisers(self, index: int) -> set[int]:
        if self.local(index):
            return set(self.endpoint_nodes(index))
        return set(range(1, self.nodes + 1))

    @cached_property
    def routes(self) -> dict[int, list[str]]:
        """Node -> the VIPs it advertises once converged."""
        found: dict[int, list[str]] = {node: [] for node in range(1, self.nodes + 1)}
        for index in range(self.services):
            for node in self.advertisers(index):
                found[node].append(self.vip(index))
        return found

    names = staticmethod(service_names)

    def service(self, index: int) -> dict[str, Any]:
        namespace, name = self.names(index)
        cluster_ip = f"10.96.{index // 256}.{index % 256}"
        return {
            "kind": "Service",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": cluster_ip,
                "clusterIPs": [cluster_ip],
                "externalTrafficPolicy": "Local" if self.local(index) else "Cluster",
                "ports": [{"port": 5000, "protocol": "UDP"}],
            },
            "status": {"loadBalancer": {"ingress": [{"ip": self.vip(index)}]}},
        }

    def endpoint_slice(self, index: int, ready: tuple[bool, bool] = (True, True)) -> dict[str, Any]:
        """Service ``index``'s EndpointSlice, its two endpoints ``ready`` or not."""
        return endpoint_slice(index, zip(self.endpoint_nodes(index), ready, strict=True))

    def objects(self) -> list[dict[str, Any]]:
        return [
            obj
            for index in range(self.services)
            for obj in (self.service(index), self.endpoint_slice(index))
        ]


class Api:
    """The lab API server as a process; its counters and a few writes over plain HTTP."""

    def __init__(self, lab: Lab, objects: list[dict[str, Any]], namespaces: list[str]) -> None:
        state = lab.workdir / "apiserver.json"
        _state_file(state, objects)
        self.kubeconfig = lab.workdir / "kubeconfig"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        log = open(lab.workdir / "apiserver.log", "ab")  # noqa: SIM115 - the process's own
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lab.apiserver",
                "--port",
                str(self.port),
                "--kubeconfig",
                str(self.kubeconfig),
                "--state",
                str(state),
                # A real API server sends a bookmark about once a minute, not every second.
                "--bookmark-seconds",
                "60",
                *(f"--listen-netns={ns}" for ns in namespaces),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        lab.processes.append(self.process)
        wait_for(self.kubeconfig.exists, 30, what="the lab API server's kubeconfig")

    def read(self, path: str) -> bytes:
        with urllib.request.urlopen(self.base + path, timeout=30) as reply:
            body: bytes = reply.read()
            return body

    def get(self, path: str) -> Any:
        return json.loads(self.read(path))

    def patch_slice(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._patch(
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices/{name}", patch
        )

    def patch_service(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        self._patch(f"/api/v1/namespaces/{namespace}/services/{name}", patch)

    def _patch(self, path: str, patch: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.base + path,
            data=json.dumps(patch).encode(),
            method="PATCH",
            headers={"Content-Type": "application/merge-patch+json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()

    def watch_totals(self) -> tuple[int, int]:
        """(events, bytes) every watch has sent, bookmarks left out."""
        by_type = self.get("/lab/watch-stats")["total"]["byType"]
        changes = [v for kind, v in by_type.items() if kind != "BOOKMARK"]
        return sum(v["events"] for v in changes), sum(v["bytes"] for v in changes)


@dataclass
class Node:
    """One fleet node: its namespace, its link, cosmolet, and (hybrid) zebra + bfdd."""

    index: int
    ns: Namespace
    link: NodeLink
    agent: Cosmolet
    frr_config: str | None  # hybrid: what zebra and bfdd run
    frr: FrrRouter | None = None

    def start_frr(self) -> None:
        if self.frr_config is not None:
            self.frr = self.ns.lab.frr(self.ns, self.frr_config, daemons=("zebra", "bfdd"))

    def stop_frr(self) -> None:
        if self.frr is not None:
            self.frr.stop()

    def restart_pod(self) -> None:
        """As the kubelet replaces the chart's pod: SIGTERM to both containers; the FRR sidecar
        (``charts/cosmolet/files/frr-sidecar.sh``) stops zebra and bfdd only once the node's BGP
        sessions have closed (at most 25 s), so that the switch never sees BFD go down first.
        Then the FRR sidecar and cosmolet start again."""
        assert self.agent.process is not None
        self.agent.process.send_signal(signal.SIGTERM)
        if self.frr is not None:
            deadline = time.monotonic() + 25
            while time.monotonic() < deadline and self._bgp_sessions_open():
                time.sleep(0.2)
            self.stop_frr()
        self.agent.process.wait(30)
        self.agent.process = None
        self.start_frr()
        self.agent.start()

    def _bgp_sessions_open(self) -> bool:
        """The sidecar's test: an established TCP connection to port 179 in the node."""
        return bool(self.ns.run("ss", "-Htn", "state", "established", "( dport = :179 )").strip())

    def pids(self) -> dict[str, int]:
        """Every process of the node: cosmolet's three, and FRR's."""
        assert self.agent.process is not None
        found = {
            "supervisor": self.agent.process.pid,  # `cosmolet start` (ip netns exec execs it)
            "exabgp": self.agent.exabgp_pid(),
            "agent": self.agent.agent_pid(),
        }
        if self.frr is not None:
            found.update(self.frr.pids)
        return found

    def silence(self, vips: list[str], stop: bool) -> None:
        """A node gone silent (``stop``), or back: its BGP and BFD speakers and zebra frozen
        (SIGSTOP: no FIN, no NOTIFICATION, nothing), and its service addresses taken off the
        loopback, so the traffic still sent to it is dropped as a dead node would drop it."""
        pids = [self.agent.exabgp_pid(), *(self.frr.pids.values() if self.frr else ())]
        verb = "del" if stop else "add"
        set_addresses(self.ns, vips, verb)
        for pid in pids:
            os.kill(pid, signal.SIGSTOP if stop else signal.SIGCONT)

    def leaf_peer(self, mode: str) -> str:
        """How the node's leaf names this node's session in ``show bgp summary``."""
        if mode == "hybrid":
            return self.link.leaf_port
        return numbered_addresses(self.link.leaf, self.index)[1]


def set_addresses(ns: Namespace, vips: list[str], verb: str = "add") -> None:
    """Add (or ``del``) /32s on the namespace's loopback, in one ``ip -batch``."""
    batch = ns.lab.workdir / f"{ns.name}-lo.batch"
    batch.write_text("".join(f"addr {verb} {vip}/32 dev lo\n" for vip in vips))
    ns.ip("-batch", str(batch))


#: what the fleet's nodes advertise: the Services' load-balancer IPs, not their ClusterIPs
LB_ONLY = {
    "advertise": {
        "clusterIP": {"enabled": False},
        "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.18.0.0/15"]},
    }
}


def node_config(
    fabric: Fabric, node: int, link: NodeLink, services: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Node ``node``'s cosmolet config; ``services``: its ``services:`` section (``LB_ONLY``)."""
    bgp: dict[str, Any] = {"asn": 65001, "routerId": f"10.255.1.{node}"}
    if fabric.mode == "hybrid":
        bgp["interfaces"] = [link.node_port]
        bgp["bfd"] = {
            **BFD,
            "vtyshSocketDir": str(fabric.lab.workdir / f"{fabric.lab.tag}-node{node}"),
        }
    else:
        leaf_v4, node_v4, _, _ = numbered_addresses(link.leaf, node)
        bgp["peers"] = [{"address": leaf_v4, "asn": 65100 + link.leaf, "localAddress": node_v4}]
    return {
        "mode": fabric.mode,
        "nodeName": f"node{node}",
        "bgp": bgp,
        "services": LB_ONLY if services is None else services,
        "logging": {"level": "warning", "format": "json"},
    }


def prepare_nodes(
    fabric: Fabric,
    routes: Mapping[int, list[str]],
    kubeconfig: Path,
    services: dict[str, Any] | None = None,
) -> list[Node]:
    """Each node's service addresses (``routes``: node -> what it advertises, held on its
    loopback), its return route to the client, and (hybrid) zebra and bfdd running; cosmolet
    configured (``services``: see ``node_config``) but not started."""
    nodes = []
    for link in fabric.links:
        ns = fabric.nodes[link.node - 1]
        if routes.get(link.node):
            set_addresses(ns, routes[link.node])
        config = node_config(fabric, link.node, link, services)
        agent = Cosmolet(ns, fabric.lab.workdir / f"node{link.node}", config, kubeconfig)
        rendered = None
        if fabric.mode == "hybrid":
            rendered = frr_config.render(validate(config), [link.node_port])
        node = Node(link.node, ns, link, agent, rendered)
        node.start_frr()
        nodes.append(node)
    for node in nodes:
        leaf = fabric.leaves[node.link.leaf - 1]
        if fabric.mode == "hybrid":
            via = ["inet6", wait_for(partial(leaf.link_local, node.link.leaf_port), 10)]
        else:
            via = [numbered_addresses(node.link.leaf, node.index)[0]]
        subnet = CLIENT_V4.rsplit(".", 1)[0] + ".0/24"
        node.ns.ip("route", "add", subnet, "via", *via, "dev", node.link.node_port)
    return nodes


def peers(router: FrrRouter) -> dict[str, dict[str, Any]]:
    """``show bgp ipv4 unicast summary``: peer -> its state, prefixes received..."""
    summary = router.json("show bgp ipv4 unicast summary json")
    found: dict[str, dict[str, Any]] = summary.get("peers", {})
    return found


def leaf_of(fabric: Fabric, node: Node) -> FrrRouter:
    """The leaf the node is linked to."""
    return fabric.routers[f"leaf{node.link.leaf}"]


def leaf_session(fabric: Fabric, node: Node) -> dict[str, Any]:
    """The node's session as its leaf's ``show bgp summary`` has it (empty: none)."""
    return peers(leaf_of(fabric, node)).get(node.leaf_peer(fabric.mode), {})


def fresh_routes(router: FrrRouter, peer: str) -> int:
    """Paths the router holds from ``peer`` that are not graceful-restart stale copies."""
    table = router.json(f"show bgp ipv4 unicast neighbors {peer} routes json")
    routes: dict[str, list[dict[str, Any]]] = table.get("routes", {})
    return sum(1 for paths in routes.values() for path in paths if not path.get("stale"))


def leaves_progress(
    fabric: Fabric, routes: Mapping[int, Collection[str]], nodes: list[Node]
) -> tuple[bool, bool]:
    """(every node's session is up at its leaf, and every one of its ``routes`` is there too)."""
    summaries = [peers(fabric.routers[f"leaf{leaf}"]) for leaf in (1, 2)]
    found = [summaries[n.link.leaf - 1].get(n.leaf_peer(fabric.mode), {}) for n in nodes]
    up = all(peer.get("state") == "Established" for peer in found)
    complete = all(
        peer.get("pfxRcd") == len(routes[node.index])
        for node, peer in zip(nodes, found, strict=True)
    )
    return up, up and complete


def spine_expected(cluster: Cluster, nodes: list[Node]) -> dict[str, int]:
    """Spine port -> how many VIPs its leaf should send (those some node in its rack has)."""
    expected = {}
    for leaf in (1, 2):
        vips = {
            vip for node in nodes if node.link.leaf == leaf for vip in cluster.routes[node.index]
        }
        expected[f"eth{leaf}"] = len(vips)
    return expected


def spine_complete(fabric: Fabric, expected: dict[str, int]) -> bool:
    """The spine has every VIP from every leaf that should send it."""
    found = peers(fabric.routers["spine"])
    return all(found.get(port, {}).get("pfxRcd") == count for port, count in expected.items())


def spine_rib_exact(fabric: Fabric, cluster: Cluster, nodes: list[Node]) -> bool:
    """The spine's whole table, checked once: each VIP, with a path from exactly the leaves
    whose racks advertise it, and nothing else in 198.18/15."""
    routes = fabric.routers["spine"].received_routes("ipv4")
    racks = {node.index: node.link.leaf for node in nodes}
    for index in range(cluster.services):
        want = {racks[node] for node in cluster.advertisers(index)}
        paths = routes.pop(f"{cluster.vip(index)}/32", [])
        leaves = {int(str(path.get("path", "")).split()[0]) - 65100 for path in paths}
        if leaves != want or len(paths) != len(want):
            return False
    return not any(prefix.startswith("198.1") for prefix in routes)
