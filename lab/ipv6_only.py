"""IPv6-only nodes on the reference fabric (issue 22): what the IPv6-only demo
(``python -m lab.demo --ipv6-only``) and ``tests/integration/test_ipv6_only.py`` share.

The nodes have no IPv4 address on their links or loopbacks; each has an IPv6 InternalIP on its
loopback (``NODE_IP``, ``status.hostIP``), its config no ``routerId``, so the router id is
derived from that address; the lab API server is reached at ``[::1]`` in every node's
namespace. The cluster is dual-stack or IPv6-only as the Services say: an IPv6 ``SingleStack``
one, a ``PreferDualStack`` one given only an IPv6 address (as an IPv6-only cluster does), and a
``RequireDualStack`` one whose IPv4 route the nodes still advertise, with their IPv6 link-local
as its next hop (RFC 8950).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

from lab import apiserver
from lab import fabric as lab_fabric
from lab.fabric import SERVICE_IPS, Fabric, node_ipv6
from lab.kube_client import put_endpoints
from lab.netns import FrrRouter, Lab

#: Service name -> (clusterIPs, spec extras); each IPv6 address is on every node's loopback.
SERVICES: dict[str, tuple[list[str], dict[str, Any]]] = {
    "v6": (["fd00:96::20"], {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "SingleStack"}),
    "prefer": (["fd00:96::21"], {"ipFamilies": ["IPv6"], "ipFamilyPolicy": "PreferDualStack"}),
    "dual": (
        ["fd00:96::11", "10.96.0.11"],
        {"ipFamilies": ["IPv6", "IPv4"], "ipFamilyPolicy": "RequireDualStack"},
    ),
}
V6, PREFER, DUAL6, DUAL4 = "fd00:96::20", "fd00:96::21", "fd00:96::11", "10.96.0.11"


def node_object(index: int, annotations: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Node ``index`` as a kubelet on an IPv6-only host registers it."""
    name = f"node{index}"
    labels = {"kubernetes.io/os": "linux", "kubernetes.io/hostname": name}
    return {
        "metadata": {"name": name, "labels": labels, "annotations": dict(annotations or {})},
        "status": {"addresses": [{"type": "InternalIP", "address": node_ipv6(index)}]},
    }


def hold_service_ips(fabric: Fabric) -> None:
    """The IPv6 Service addresses on every node's loopback (``build`` put the fabric's own
    there), standing in for the CNI."""
    held = {ip for ips, _ in SERVICES.values() for ip in ips if ":" in ip}
    for node in fabric.nodes:
        for address in sorted(held - set(SERVICE_IPS)):
            node.ip("addr", "add", f"{address}/128", "dev", "lo")


@dataclass
class Cluster:
    """The official client on the lab API server, over IPv6."""

    core: client.CoreV1Api
    discovery: client.DiscoveryV1Api

    @classmethod
    def of(cls, kubeconfig: Path) -> Cluster:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        return cls(client.CoreV1Api(api), client.DiscoveryV1Api(api))

    def services(self, *nodes: str) -> None:
        """Every Service of ``SERVICES``, with a ready endpoint per family on each of ``nodes``."""
        for name, (ips, extras) in SERVICES.items():
            spec = {"clusterIP": ips[0], "clusterIPs": ips, **extras}
            body = {"metadata": {"name": name}, "spec": spec}
            self.core.create_namespaced_service("default", body)  # type: ignore[arg-type]
            self.endpoints(name, *nodes)

    def endpoints(self, name: str, *nodes: str, ready: bool = True) -> None:
        ips, _ = SERVICES[name]
        families = sorted({"IPv6" if ":" in ip else "IPv4" for ip in ips})
        for family in families:
            address = "fd00:244:{}::5" if family == "IPv6" else "10.244.{}.5"
            endpoints = [
                {"addresses": [address.format(i)], "nodeName": node, "conditions": {"ready": ready}}
                for i, node in enumerate(nodes, 1)
            ]
            slice_name = f"{name}-{family.lower()}"
            put_endpoints(self.discovery, name, endpoints, slice_name, address_type=family)


def remote_router_ids(leaf: FrrRouter) -> dict[str, str]:
    """The router id of each BGP neighbor of ``leaf`` (by neighbor: its port when unnumbered,
    its address when numbered), as the leaf read it from the neighbor's OPEN."""
    neighbors: dict[str, Any] = leaf.json("show bgp neighbors json")
    return {
        name: str(data["remoteRouterId"])
        for name, data in neighbors.items()
        if isinstance(data, dict) and data.get("bgpState") == "Established"
    }


def next_hops(leaf: FrrRouter, prefix: str, family: str) -> list[str]:
    """The next hops of every path ``leaf`` holds for ``prefix`` (global and link-local)."""
    found: dict[str, Any] = leaf.json(f"show bgp {family} unicast {prefix} json")
    return sorted(
        str(hop["ip"]) for path in found.get("paths", []) for hop in path.get("nexthops", [])
    )


@contextlib.contextmanager
def running(
    lab: Lab, mode: str = "hybrid", annotations: Mapping[int, Mapping[str, str]] | None = None
) -> Iterator[tuple[Fabric, Cluster]]:
    """The fabric with IPv6-only nodes running cosmolet as processes, the lab API server at
    ``[::1]`` holding their Node objects (``annotations`` by node index) from the start."""
    fabric = lab_fabric.build(lab, mode, ipv6_only=True)
    hold_service_ips(fabric)
    nodes = [n.name for n in fabric.nodes]
    with apiserver.serving(host="::1", netns=nodes) as (_, port):
        kubeconfig = lab.workdir / "kubeconfig"
        apiserver.write_kubeconfig(kubeconfig, f"http://[::1]:{port}")
        fabric.kubeconfig, fabric.api_port = kubeconfig, port
        cluster = Cluster.of(kubeconfig)
        for index in range(1, len(fabric.nodes) + 1):
            node = node_object(index, (annotations or {}).get(index))
            cluster.core.create_node(node)  # type: ignore[arg-type]  # the client takes dicts
        lab_fabric.start_nodes(fabric, kubeconfig)
        yield fabric, cluster
