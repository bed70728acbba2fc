"""The numbered test fabric: one FRR leaf and cosmolet nodes, each on a dual-stack /31 + /127.

Used by the speaker and Kubernetes integration tests and by the benchmarks.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.frr_configs import Neighbor, numbered_router
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
