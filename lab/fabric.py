"""The reference fabric (``../shared/notes/lab.md``) in network namespaces: a spine, two leaves,
two Kubernetes nodes running cosmolet in hybrid mode (BGP unnumbered), a client behind the
spine, and the lab API server. The demo, ``make lab-up`` and the benchmarks build it.

    spine (AS 65000) ── client (10.2.0.2, fd02::2)
      |         |
    leaf1      leaf2           AS 65101 / 65102, unnumbered everywhere
      |  \\    /  |
    node1      node2           AS 65001: zebra (RAs) + ExaBGP + cosmolet agent

Each node holds every service IP on its loopback, standing in for the CNI, so a ping from the
client proves the traffic reached a node that advertised it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from cosmolet.config.schema import validate
from cosmolet.hybrid import frr_config
from lab import apiserver
from lab.frr_configs import Neighbor, spine, unnumbered_leaf
from lab.netns import FrrRouter, Lab, Namespace, wait_for
from lab.node import Cosmolet

SERVICE_IPS = ["10.96.0.10", "10.96.0.11", "fd00:96::11", "198.51.100.10", "192.0.2.66"]
CLIENT_V4, CLIENT_V6 = "10.2.0.2", "fd02::2"


@dataclass(frozen=True)
class NodeLink:
    """One node-leaf link: node ``node`` (from 1) on its ``node_port`` to leaf ``leaf`` (1 or 2)
    on the leaf's ``leaf_port``."""

    node: int
    leaf: int
    leaf_port: str
    node_port: str


def node_links(nodes: int, racks: bool) -> list[NodeLink]:
    """Each node on both leaves (its ``eth1`` to leaf1, ``eth2`` to leaf2, on the leaf's
    ``eth<node>``); with ``racks``, the first half of the nodes (rounded up) on leaf1 only and the
    rest on leaf2 only, each on its ``eth1``, numbered from ``eth1`` on each leaf."""
    if not racks:
        return [
            NodeLink(node, leaf, f"eth{node}", f"eth{leaf}")
            for leaf in (1, 2)
            for node in range(1, nodes + 1)
        ]
    first = (nodes + 1) // 2
    links = []
    for node in range(1, nodes + 1):
        leaf, port = (1, node) if node <= first else (2, node - first)
        links.append(NodeLink(node, leaf, f"eth{port}", "eth1"))
    return links


@dataclass
class Fabric:
    lab: Lab
    spine: Namespace
    leaves: list[Namespace]
    nodes: list[Namespace]
    client: Namespace
    routers: dict[str, FrrRouter] = field(default_factory=dict)
    agents: list[Cosmolet] = field(default_factory=list)
    kubeconfig: Path | None = None
    api_port: int = 0
    mode: str = "hybrid"
    #: every node-leaf link, in the order made (``build`` fills it)
    links: list[NodeLink] = field(default_factory=list)
    #: no IPv4 address on the nodes' links and loopbacks (``build(ipv6_only=True)``)
    ipv6_only: bool = False

    def router(self, name: str) -> FrrRouter:
        return self.routers[name]

    def paths(self, router: str, prefix: str) -> list[str]:
        """Where ``router`` sends ``prefix`` in its FIB: the interfaces of its next hops."""
        ns = {"spine": self.spine, "leaf1": self.leaves[0], "leaf2": self.leaves[1]}[router]
        family = "-6" if ":" in prefix else "-4"
        found = []
        for route in ns.ip_json(family, "route", "show", prefix):
            if route.get("protocol") != "bgp":
                continue
            hops = route.get("nexthops") or [route]
            found += [str(hop.get("dev")) for hop in hops if hop.get("dev")]
        return sorted(found)

    def ping(self, address: str) -> bool:
        flag = "-6" if ":" in address else "-4"
        out = self.client.run("ping", flag, "-c", "1", "-W", "1", address, check=False)
        return " 0% packet loss" in out


def numbered_addresses(leaf: int, node: int) -> tuple[str, str, str, str]:
    """Numbered mode: (leaf v4, node v4, leaf v6, node v6) on the leaf-node link."""
    return (
        f"10.{leaf}.{node}.0",
        f"10.{leaf}.{node}.1",
        f"fd10:{leaf}:{node}::",
        f"fd10:{leaf}:{node}::1",
    )


def node_ipv6(index: int) -> str:
    """An IPv6-only node's own address (its InternalIP and ``NODE_IP``), on its loopback."""
    return f"fd00:255::{index}"


def node_config(
    index: int, runtime: Path, mode: str = "hybrid", ipv6_only: bool = False
) -> dict[str, Any]:
    """Node ``index``'s config. ``ipv6_only``: no ``routerId`` (derived from the IPv6
    ``NODE_IP``), ``http.listen`` on ``[::]`` and, numbered, a peer per fabric interface (its
    /127's other end)."""
    bgp: dict[str, Any] = {"asn": 65001}
    if not ipv6_only:
        bgp["routerId"] = f"192.0.2.{index}"
    if mode == "hybrid":
        bgp["interfaces"] = ["eth*"]
    else:
        bgp["peers"] = []
        for leaf in (1, 2):
            leaf_v4, node_v4, leaf_v6, node_v6 = numbered_addresses(leaf, index)
            if ipv6_only:  # the other end of eth<leaf>'s /127 (one config for every node)
                bgp["peers"].append({"interface": f"eth{leaf}", "asn": 65100 + leaf})
                continue
            bgp["peers"] += [
                {"address": leaf_v4, "asn": 65100 + leaf, "localAddress": node_v4},
                {"address": leaf_v6, "asn": 65100 + leaf, "localAddress": node_v6},
            ]
    http = {"http": {"listen": "[::]:9179"}} if ipv6_only else {}  # probed at the IPv6 hostIP
    return {
        "mode": mode,
        "nodeName": f"node{index}",
        "runtimeDir": str(runtime),
        **http,
        "bgp": bgp,
        "services": {
            "advertise": {
                "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
                "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
            }
        },
        "logging": {"level": "info", "format": "json"},
    }


def build(
    lab: Lab,
    mode: str = "hybrid",
    nodes: int = 2,
    racks: bool = False,
    bfd: bool = False,
    ipv6_only: bool = False,
) -> Fabric:
    """Namespaces, links, addresses and FRR on the switches (no cosmolet yet).

    ``nodes`` Kubernetes nodes, linked as ``node_links(nodes, racks)`` says; each leaf's uplink
    to the spine is the port after its last node port (``eth3`` with the two default nodes).
    ``bfd``: the leaves run bfdd and ask BFD of every unnumbered session (100 ms x 3); the nodes
    answer only if they run bfdd themselves (hybrid mode, ``bgp.bfd``). ``ipv6_only``: no IPv4
    address on the nodes (numbered: a /127 per link, no /31; their loopbacks hold only the IPv6
    service IPs); the switches keep theirs.
    """
    spine_ns = lab.namespace("spine")
    client = lab.namespace("client")
    leaves = [lab.namespace("leaf1"), lab.namespace("leaf2")]
    node_namespaces = [lab.namespace(f"node{index}") for index in range(1, nodes + 1)]
    links = node_links(nodes, racks)
    for ns in (spine_ns, client, *leaves, *node_namespaces):
        # As a node's network configuration would: a link that goes down keeps its addresses
        # (the kernel's default flushes IPv6 ones, and a numbered session could never return).
        for scope in ("all", "default"):
            ns.run("sysctl", "-qw", f"net.ipv6.conf.{scope}.keep_addr_on_down=1")
    uplinks = {}
    for leaf_index, leaf in enumerate(leaves, 1):
        uplinks[leaf_index] = f"eth{sum(1 for link in links if link.leaf == leaf_index) + 1}"
        lab.link(spine_ns, f"eth{leaf_index}", leaf, uplinks[leaf_index])
        for link in links:
            if link.leaf == leaf_index:
                lab.link(leaf, link.leaf_port, node_namespaces[link.node - 1], link.node_port)
    lab.link(spine_ns, "eth9", client, "eth1")
    spine_ns.ip("addr", "add", "10.2.0.1/24", "dev", "eth9")
    spine_ns.ip("addr", "add", "fd02::1/64", "dev", "eth9", "nodad")
    client.ip("addr", "add", f"{CLIENT_V4}/24", "dev", "eth1")
    client.ip("addr", "add", f"{CLIENT_V6}/64", "dev", "eth1", "nodad")
    client.ip("route", "add", "default", "via", "10.2.0.1")
    client.ip("-6", "route", "add", "default", "via", "fd02::1")
    for ns in (spine_ns, *leaves):
        ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        ns.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    fabric = Fabric(
        lab, spine_ns, leaves, node_namespaces, client, mode=mode, links=links, ipv6_only=ipv6_only
    )
    fabric.routers["spine"] = lab.frr(
        spine_ns, spine("spine", 65000, "10.255.0.100", ["eth1", "eth2"])
    )
    for index, leaf in enumerate(leaves, 1):
        downlinks: list[Neighbor] = []
        ports = [link for link in links if link.leaf == index]
        if mode == "numbered":
            for link in ports:
                node = node_namespaces[link.node - 1]
                leaf_v4, node_v4, leaf_v6, node_v6 = numbered_addresses(index, link.node)
                if not ipv6_only:
                    leaf.ip("addr", "add", f"{leaf_v4}/31", "dev", link.leaf_port)
                    node.ip("addr", "add", f"{node_v4}/31", "dev", link.node_port)
                    downlinks.append(Neighbor(node_v4, 65001))
                leaf.ip("addr", "add", f"{leaf_v6}/127", "dev", link.leaf_port, "nodad")
                node.ip("addr", "add", f"{node_v6}/127", "dev", link.node_port, "nodad")
                downlinks.append(Neighbor(node_v6, 65001))
        unnumbered = [uplinks[index]]
        if mode != "numbered":
            unnumbered = [link.leaf_port for link in ports] + unnumbered
        fabric.routers[f"leaf{index}"] = lab.frr(
            leaf,
            unnumbered_leaf(
                f"leaf{index}",
                65100 + index,
                f"10.255.0.{index}",
                unnumbered,
                bfd=bfd,
                kernel_nexthops=False,
                numbered=downlinks,
            ),
            daemons=("zebra", "bgpd", "bfdd") if bfd else ("zebra", "bgpd"),
        )
    for node in node_namespaces:
        for address in [ip for ip in SERVICE_IPS if ":" in ip or not ipv6_only]:
            node.ip("addr", "add", address + ("/128" if ":" in address else "/32"), "dev", "lo")
    return fabric


def start_nodes(fabric: Fabric, kubeconfig: Path) -> None:
    """cosmolet on each node (hybrid: with zebra for router advertisements), then the nodes'
    return routes to the client, ECMP over both leaves."""
    lab = fabric.lab
    for index, node in enumerate(fabric.nodes, 1):
        runtime = lab.workdir / f"node{index}" / "run"
        config = node_config(index, runtime, fabric.mode, fabric.ipv6_only)
        if fabric.mode == "hybrid":
            zebra = frr_config.render(validate(config), ["eth1", "eth2"])
            fabric.routers[f"node{index}-zebra"] = lab.frr(node, zebra, daemons=("zebra",))
        agent = Cosmolet(node, lab.workdir / f"node{index}", config, kubeconfig)
        if fabric.ipv6_only:  # the address a kubelet would report as status.hostIP
            node.ip("addr", "add", f"{node_ipv6(index)}/128", "dev", "lo")
            agent.env["NODE_IP"] = node_ipv6(index)
        fabric.agents.append(agent.start())
    return_routes(fabric)


def return_routes(fabric: Fabric) -> None:
    """The nodes' routes back to the client, ECMP over both leaves (hybrid: via each leaf's
    link-local address, once its router advertisements arrived)."""
    for node in fabric.nodes:
        index = _index(fabric, node)
        if fabric.mode == "hybrid":
            wait_for(partial(_has_router, node), 20, what=f"{node.name} sees the leaves")
            v4 = [
                ("eth1", "inet6", fabric.leaves[0].link_local(f"eth{index}")),
                ("eth2", "inet6", fabric.leaves[1].link_local(f"eth{index}")),
            ]
            v6 = [(dev, "", address) for dev, _, address in v4]
        else:
            v4 = [(f"eth{leaf}", "", numbered_addresses(leaf, index)[0]) for leaf in (1, 2)]
            v6 = [(f"eth{leaf}", "", numbered_addresses(leaf, index)[2]) for leaf in (1, 2)]
        routes: list[tuple[str, list[tuple[str, str, str]], list[str]]] = [
            ("fd02::/64", v6, ["-6"])
        ]
        if not fabric.ipv6_only:
            routes.append(("10.2.0.0/24", v4, []))
        for prefix, hops, family in routes:
            route = [*family, "route", "add", prefix]
            for dev, via_family, address in hops:
                route += [
                    "nexthop",
                    "via",
                    *([via_family] if via_family else []),
                    address,
                    "dev",
                    dev,
                ]
            node.ip(*route)


def _index(fabric: Fabric, node: Namespace) -> int:
    return fabric.nodes.index(node) + 1


def _has_router(node: Namespace) -> bool:
    entries = node.ip_json("-6", "neigh", "show")
    return sum(1 for e in entries if "router" in e) >= 2


@contextlib.contextmanager
def running(mode: str = "hybrid", nodes: int = 2) -> Iterator[Fabric]:
    """The whole fabric, API server included, torn down on exit (and on failure)."""
    with Lab() as lab:
        fabric = build(lab, mode, nodes=nodes)
        store = apiserver.Store()
        with apiserver.serving(netns=[n.name for n in fabric.nodes], store=store) as (_, port):
            kubeconfig = lab.workdir / "kubeconfig"
            apiserver.write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
            fabric.kubeconfig, fabric.api_port = kubeconfig, port
            start_nodes(fabric, kubeconfig)
            yield fabric


def wait_established(fabric: Fabric, timeout: float = 60) -> float:
    """Seconds until every leaf has its three sessions (two nodes, the spine) established."""
    started = time.monotonic()
    for name in ("leaf1", "leaf2"):
        router = fabric.routers[name]
        wait_for(partial(_established, router, 3), timeout, what=f"{name} sessions")
    return time.monotonic() - started


def _established(router: FrrRouter, at_least: int) -> bool:
    """IPv4 or IPv6 sessions (an IPv6-only numbered node has only the latter)."""
    summary = router.json("show bgp summary json")
    peers = {
        name: peer
        for family in ("ipv6Unicast", "ipv4Unicast")
        for name, peer in summary.get(family, {}).get("peers", {}).items()
    }
    return sum(1 for peer in peers.values() if peer.get("state") == "Established") >= at_least
