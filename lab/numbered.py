"""Numbered test fabrics. ``build_numbered``: one FRR leaf and cosmolet nodes, each on a
dual-stack /31 + /127 (the speaker and Kubernetes integration tests, the benchmarks).
``build_racks``: racks of nodes under their own leaves (ToRs), each link with its own /31 and
/127, so that one shared config must resolve differently on each node (the numbered-fabric
tests and ``python -m lab.demo --numbered``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.frr_configs import Neighbor, numbered_router, unnumbered_leaf
from lab.frr_configs import spine as spine_router
from lab.netns import FrrRouter, Lab, Namespace, wait_for
from lab.node import Cosmolet


@dataclass
class NumberedFabric:
    """A leaf (FRR, AS 65101) and nodes (cosmolet, AS 65001), each on a dual-stack /31 + /127.

    Node ``i`` (from 1) is namespace ``node<i>`` on the leaf's ``eth<i>``: the leaf is
    ``10.0.<i>.0`` and ``fd00:<i>::``, the node ``10.0.<i>.1`` and ``fd00:<i>::1``.
    """

    lab: Lab
    leaf: Namespace
    nodes: list[Namespace]
    frr: FrrRouter

    LEAF_V4 = "10.0.1.0"
    NODE_V4 = "10.0.1.1"
    LEAF_V6 = "fd00:1::"
    NODE_V6 = "fd00:1::1"

    @property
    def node(self) -> Namespace:
        return self.nodes[0]

    @staticmethod
    def addresses(index: int) -> tuple[str, str, str, str]:
        """(leaf v4, node v4, leaf v6, node v6) of node ``index``."""
        return f"10.0.{index}.0", f"10.0.{index}.1", f"fd00:{index}::", f"fd00:{index}::1"

    def cosmolet(self, node: int = 1, kubeconfig: Path | None = None, **overrides: Any) -> Cosmolet:
        leaf_v4, node_v4, leaf_v6, node_v6 = self.addresses(node)
        bgp: dict[str, Any] = {
            "asn": 65001,
            "routerId": node_v4,
            "peers": [
                {"address": leaf_v4, "asn": 65101, "localAddress": node_v4},
                {"address": leaf_v6, "asn": 65101, "localAddress": node_v6},
            ],
        }
        bgp.update(overrides.pop("bgp", {}))
        config: dict[str, Any] = {"nodeName": f"node{node}", "bgp": bgp, **overrides}
        return Cosmolet(self.nodes[node - 1], self.lab.workdir / f"node{node}", config, kubeconfig)

    def rib(self, family: str = "ipv4") -> dict[str, Any]:
        return self.frr.received_routes(family)

    def next_hops(self, prefix: str, family: str = "ipv4") -> set[str]:
        """The next hops of every path the leaf holds for ``prefix``."""
        paths = self.frr.json(f"show bgp {family} unicast {prefix} json").get("paths", [])
        return {nh["ip"] for path in paths for nh in path.get("nexthops", [])}

    def fib(self, family: int = 4) -> set[str]:
        """Prefixes in the leaf kernel installed by BGP (as ``A.B.C.D/32``)."""
        found = set()
        for route in self.leaf.routes(family):
            if route.get("protocol") == "bgp":
                dst = route["dst"]
                found.add(dst if "/" in dst else f"{dst}/{32 if family == 4 else 128}")
        return found

    def wait_rib(self, expected: set[str], family: str = "ipv4", timeout: float = 30) -> None:
        wait_for(
            lambda: set(self.rib(family)) == expected,
            timeout,
            what=f"leaf {family} RIB == {sorted(expected)}",
        )

    def neighbor(self, address: str) -> dict[str, Any]:
        result: dict[str, Any] = self.frr.json(f"show bgp neighbors {address} json").get(
            address, {}
        )
        return result

    def established(self, address: str) -> bool:
        return self.neighbor(address).get("bgpState") == "Established"

    def updates_received(self, address: str) -> int:
        return int(self.neighbor(address).get("messageStats", {}).get("updatesRecv", 0))


def build_numbered(
    lab: Lab, passwords: dict[str, str] | None = None, ibgp: bool = False, nodes: int = 1
) -> NumberedFabric:
    leaf = lab.namespace("leaf")
    passwords = passwords or {}
    neighbors = []
    node_namespaces = []
    for index in range(1, nodes + 1):
        node = lab.namespace(f"node{index}")
        node_namespaces.append(node)
        lab.link(leaf, f"eth{index}", node, "eth1")
        leaf_v4, node_v4, leaf_v6, node_v6 = NumberedFabric.addresses(index)
        leaf.ip("addr", "add", f"{leaf_v4}/31", "dev", f"eth{index}")
        leaf.ip("addr", "add", f"{leaf_v6}/127", "dev", f"eth{index}", "nodad")
        node.ip("addr", "add", f"{node_v4}/31", "dev", "eth1")
        node.ip("addr", "add", f"{node_v6}/127", "dev", "eth1", "nodad")
        neighbors += [
            Neighbor(node_v4, 65001, passwords.get(node_v4)),
            Neighbor(node_v6, 65001, passwords.get(node_v6)),
        ]
    config = numbered_router("leaf", 65001 if ibgp else 65101, "10.255.0.1", neighbors)
    frr = lab.frr(leaf, config)
    return NumberedFabric(lab, leaf, node_namespaces, frr)


def link_addresses(leaf: int, node: int) -> tuple[str, str, str, str]:
    """(switch v4, node v4, switch v6, node v6) on the link of ``node`` to leaf ``leaf`` (the
    collector is leaf 9): a /31 and a /127 of their own, as ``lab.fabric`` numbers them."""
    return (
        f"10.{leaf}.{node}.0",
        f"10.{leaf}.{node}.1",
        f"fd10:{leaf}:{node}::",
        f"fd10:{leaf}:{node}::1",
    )


COLLECTOR = 9  # the collector's number in ``link_addresses``
COLLECTOR_ASN = 65000


@dataclass
class RackFabric:
    """Leaves (FRR, AS 65101, 65102...: one per rack) and nodes, node ``n`` (from 1) linked to
    each leaf in ``homes[n-1]`` (its ``eth1``, ``eth2``... in that order, the leaf's ``eth<n>``);
    with ``collector``, an FRR router in AS 65000 linked to every node on the node's next port
    (a peer meant for some nodes only). The switches accept any AS from the nodes (``remote-as
    external``), as a node's AS may come from its own Node annotation."""

    lab: Lab
    leaves: list[Namespace]
    nodes: list[Namespace]
    homes: tuple[tuple[int, ...], ...]
    routers: dict[str, FrrRouter] = field(default_factory=dict)
    collector: Namespace | None = None
    #: a spine (unnumbered to the leaves) and a client behind it, for the demo
    spine: Namespace | None = None
    client: Namespace | None = None

    def port(self, node: int, leaf: int) -> str:
        """The node's interface to ``leaf`` (``COLLECTOR`` for the collector)."""
        homes = self.homes[node - 1]
        index = len(homes) if leaf == COLLECTOR else homes.index(leaf)
        return f"eth{index + 1}"

    def neighbor(self, router: str, address: str) -> dict[str, Any]:
        found = self.routers[router].json(f"show bgp neighbors {address} json")
        result: dict[str, Any] = found.get(address, {})
        return result

    def established(self, router: str, address: str) -> bool:
        return self.neighbor(router, address).get("bgpState") == "Established"

    def routes(self, router: str, family: str = "ipv4") -> set[str]:
        return set(self.routers[router].received_routes(family))

    def next_hops(self, router: str, prefix: str, family: str = "ipv4") -> set[str]:
        """The next hops of every path ``router`` holds for ``prefix``."""
        paths = self.routers[router].json(f"show bgp {family} unicast {prefix} json")
        return {nh["ip"] for p in paths.get("paths", []) for nh in p.get("nexthops", [])}

    def paths(self, router: str, prefix: str) -> list[str]:
        """Where ``router`` sends ``prefix`` in its FIB: the interfaces of its next hops."""
        found = []
        for route in self.fib(router, prefix):
            hops = route.get("nexthops") or [route]
            found += [str(hop["dev"]) for hop in hops if hop.get("dev")]
        return sorted(found)

    def ping(self, address: str) -> bool:
        """From the client behind the spine (``spine=True``)."""
        assert self.client is not None
        flag = "-6" if ":" in address else "-4"
        out = self.client.run("ping", flag, "-c", "1", "-W", "1", address, check=False)
        return " 0% packet loss" in out

    def client_routes(self, node: int) -> None:
        """Node ``node``'s routes back to the client's subnets, through its leaves: set when
        the fabric is built, and again after a link of its came back up (the kernel drops a
        route whose only link went down; a node's network configuration would restore it)."""
        _client_routes(self, node)

    def fib(self, router: str, prefix: str) -> list[dict[str, Any]]:
        """``router``'s kernel routes for ``prefix`` installed by BGP."""
        ns = self.routers[router].ns
        family = "-6" if ":" in prefix else "-4"
        found: list[dict[str, Any]] = ns.ip_json(family, "route", "show", prefix)
        return [route for route in found if route.get("protocol") == "bgp"]


def build_racks(
    lab: Lab,
    homes: Sequence[Sequence[int]] = ((1,), (2,)),
    *,
    bfd_leaves: Sequence[int] = (),
    collector: bool = False,
    spine: bool = False,
) -> RackFabric:
    """The racks (see ``RackFabric``); ``bfd_leaves``: leaves that ask BFD of their node
    sessions (100 ms x 3); ``spine``: the reference fabric's spine above the leaves (AS 65000,
    unnumbered, on each leaf's ``eth<last node port + 1>``) with the client behind it, each
    node holding the service IPs (standing in for the CNI) and routing the client's subnets
    back through its leaves (the demo)."""
    homed = tuple(tuple(home) for home in homes)
    count = max(leaf for home in homed for leaf in home)
    leaves = [lab.namespace(f"leaf{index}") for index in range(1, count + 1)]
    nodes = [lab.namespace(f"node{index}") for index in range(1, len(homed) + 1)]
    fabric = RackFabric(lab, leaves, nodes, homed)
    if collector:
        fabric.collector = lab.namespace("collector")
    for ns in [*leaves, *nodes, *([fabric.collector] if fabric.collector else [])]:
        # A link that goes down keeps its addresses, as on a node's network configuration.
        for scope in ("all", "default"):
            ns.run("sysctl", "-qw", f"net.ipv6.conf.{scope}.keep_addr_on_down=1")
        ns.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        ns.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    downlinks: dict[int, list[Neighbor]] = {leaf: [] for leaf in range(1, count + 1)}
    downlinks[COLLECTOR] = []
    switches = {leaf: leaves[leaf - 1] for leaf in range(1, count + 1)}
    if fabric.collector is not None:
        switches[COLLECTOR] = fabric.collector
    for node_index, home in enumerate(homed, 1):
        node = nodes[node_index - 1]
        for leaf in [*home, *([COLLECTOR] if fabric.collector else [])]:
            switch, port = switches[leaf], fabric.port(node_index, leaf)
            lab.link(switch, f"eth{node_index}", node, port)
            switch_v4, node_v4, switch_v6, node_v6 = link_addresses(leaf, node_index)
            switch.ip("addr", "add", f"{switch_v4}/31", "dev", f"eth{node_index}")
            switch.ip("addr", "add", f"{switch_v6}/127", "dev", f"eth{node_index}", "nodad")
            node.ip("addr", "add", f"{node_v4}/31", "dev", port)
            node.ip("addr", "add", f"{node_v6}/127", "dev", port, "nodad")
            bfd = leaf in bfd_leaves
            downlinks[leaf] += [
                Neighbor(node_v4, "external", bfd=bfd),
                Neighbor(node_v6, "external", bfd=bfd),
            ]
    for leaf in range(1, count + 1):
        served = sum(1 for home in homed if leaf in home)
        fabric.routers[f"leaf{leaf}"] = lab.frr(
            leaves[leaf - 1],
            unnumbered_leaf(
                f"leaf{leaf}",
                65100 + leaf,
                f"10.255.0.{leaf}",
                [f"eth{len(homed) + 1}"] if spine and served else [],
                kernel_nexthops=False,
                numbered=downlinks[leaf],
            ),
            daemons=("zebra", "bgpd", "bfdd") if leaf in bfd_leaves else ("zebra", "bgpd"),
        )
    if fabric.collector is not None:
        config = numbered_router("collector", COLLECTOR_ASN, "10.255.0.9", downlinks[COLLECTOR])
        fabric.routers["collector"] = lab.frr(fabric.collector, config)
    if spine:
        _add_spine(fabric)
    return fabric


def _add_spine(fabric: RackFabric) -> None:
    """The spine and the client of ``lab.fabric`` above the racks (see ``build_racks``)."""
    from lab.fabric import CLIENT_V4, CLIENT_V6, SERVICE_IPS

    lab = fabric.lab
    fabric.spine = lab.namespace("spine")
    fabric.client = lab.namespace("client")
    uplink = f"eth{len(fabric.homes) + 1}"
    for index, leaf in enumerate(fabric.leaves, 1):
        lab.link(fabric.spine, f"eth{index}", leaf, uplink)
    lab.link(fabric.spine, "eth9", fabric.client, "eth1")
    fabric.spine.ip("addr", "add", "10.2.0.1/24", "dev", "eth9")
    fabric.spine.ip("addr", "add", "fd02::1/64", "dev", "eth9", "nodad")
    fabric.client.ip("addr", "add", f"{CLIENT_V4}/24", "dev", "eth1")
    fabric.client.ip("addr", "add", f"{CLIENT_V6}/64", "dev", "eth1", "nodad")
    fabric.client.ip("route", "add", "default", "via", "10.2.0.1")
    fabric.client.ip("-6", "route", "add", "default", "via", "fd02::1")
    fabric.spine.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
    fabric.spine.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
    ports = [f"eth{index}" for index in range(1, len(fabric.leaves) + 1)]
    config = spine_router("spine", 65000, "10.255.0.100", ports)
    fabric.routers["spine"] = lab.frr(fabric.spine, config)
    for node_index, node in enumerate(fabric.nodes, 1):
        for address in SERVICE_IPS:
            node.ip("addr", "add", address + ("/128" if ":" in address else "/32"), "dev", "lo")
        fabric.client_routes(node_index)


def _client_routes(fabric: RackFabric, node_index: int) -> None:
    node = fabric.nodes[node_index - 1]
    for prefix, family, at in (("10.2.0.0/24", [], 0), ("fd02::/64", ["-6"], 2)):
        route = [*family, "route", "replace", prefix]
        for home in fabric.homes[node_index - 1]:
            via = link_addresses(home, node_index)[at]
            route += ["nexthop", "via", via, "dev", fabric.port(node_index, home)]
        node.ip(*route)
