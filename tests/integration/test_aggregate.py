"""The aggregate mode end to end (issue 23): the lab API server, driven by the official
kubernetes client -> two cosmolet nodes (real ExaBGP) -> a real FRR leaf, its BGP table and
its kernel FIB.

``services.advertise.clusterIP.aggregate: [10.96.0.0/16, fd00:96::/112]``: each CIDR is one
route from a node while a Cluster-policy ClusterIP inside it is healthy; a Local-policy
ClusterIP inside is still its own /32 or /128, from its endpoints' nodes only, and the leaf
forwards it by that more specific route; a ClusterIP outside every aggregate is unaffected.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from lab.apiserver import serving, write_kubeconfig
from lab.kube_client import put_endpoints, request_body
from lab.netns import Lab, wait_for
from lab.numbered import NumberedFabric, build_numbered
from tests.factories import endpoint, service
from tests.integration.conftest import sample

V4, V6 = "10.96.0.0/16", "fd00:96::/112"
SERVICES = {"advertise": {"clusterIP": {"enabled": True, "aggregate": [V4, V6]}}}


class Cluster:
    """The lab API server as the tests write to it."""

    def __init__(self, kubeconfig: Path) -> None:
        api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core, self.discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)

    def service(self, name: str, addresses: tuple[str, ...], policy: str = "Cluster") -> None:
        obj = service(name, cluster_ips=addresses, internal_policy=policy)
        if len(addresses) > 1:
            obj["spec"]["ipFamilyPolicy"] = "RequireDualStack"
        self.core.create_namespaced_service("default", request_body(obj))  # type: ignore[arg-type]

    def ready(self, name: str, node: str, ready: bool = True, dual: bool = True) -> None:
        """One endpoint of ``name`` on ``node`` in each family's slice, ``ready`` or not."""
        families = (("IPv4", "10.244.1.5"), ("IPv6", "fd00:244::5"))[: 2 if dual else 1]
        for family, address in families:
            endpoints = [endpoint(address, node=node, ready=ready)]
            put_endpoints(
                self.discovery, name, endpoints, f"{name}-{family.lower()}", "default", family
            )


@pytest.fixture
def setup(lab: Lab) -> Iterator[tuple[NumberedFabric, Cluster]]:
    fabric = build_numbered(lab, nodes=2)
    with serving(netns=[ns.name for ns in fabric.nodes]) as (_, port):
        kubeconfig = lab.workdir / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        for index in (1, 2):
            fabric.cosmolet(index, kubeconfig, services=SERVICES).start()
        yield fabric, Cluster(kubeconfig)


def ribs(fabric: NumberedFabric) -> tuple[set[str], set[str]]:
    return set(fabric.rib("ipv4")), set(fabric.rib("ipv6"))


def wait_ribs(fabric: NumberedFabric, v4: set[str], v6: set[str], timeout: float = 30) -> None:
    wait_for(lambda: ribs(fabric) == (v4, v6), timeout, what=f"leaf RIB == {v4} and {v6}")


def fib_dev(fabric: NumberedFabric, address: str) -> set[str]:
    """The leaf ports its kernel sends ``address`` out of (every next hop of the route used)."""
    family = "-6" if ":" in address else "-4"
    route = fabric.leaf.ip_json(family, "route", "show", "match", address)
    used = max(
        (r for r in route if r.get("protocol") == "bgp"),
        key=lambda r: int(str(r["dst"]).partition("/")[2] or (128 if ":" in address else 32)),
    )
    return {str(hop["dev"]) for hop in used.get("nexthops") or [used]}


def test_aggregate_local_more_specifics_and_withdrawal(
    setup: tuple[NumberedFabric, Cluster],
) -> None:
    fabric, cluster = setup
    node1, node2 = fabric.addresses(1), fabric.addresses(2)
    cluster.service("web", ("10.96.0.10", "fd00:96::10"))
    cluster.service("api", ("10.96.0.11", "fd00:96::11"))
    cluster.service("pinned", ("10.96.0.20", "fd00:96::20"), policy="Local")
    cluster.service("outside", ("10.97.0.5",))
    cluster.ready("web", "node2")
    cluster.ready("api", "node2")
    cluster.ready("pinned", "node1")
    cluster.ready("outside", "node2", dual=False)

    # The aggregates from both nodes; the Local ClusterIP one by one, from node1 only; the
    # Cluster ClusterIPs inside never as /32 or /128; the one outside as its own /32.
    wait_ribs(fabric, {V4, "10.96.0.20/32", "10.97.0.5/32"}, {V6, "fd00:96::20/128"})
    assert fabric.next_hops(V4) == {node1[1], node2[1]}
    assert fabric.next_hops("10.96.0.20/32") == {node1[1]}
    assert {node1[3], node2[3]} <= fabric.next_hops(V6, "ipv6")
    assert node2[3] not in fabric.next_hops("fd00:96::20/128", "ipv6")
    # The kernel: the aggregate over both nodes' ports, the Local address by its /32 to node1.
    wait_for(lambda: fib_dev(fabric, "10.96.0.10") == {"eth1", "eth2"}, 10, what="FIB /16")
    assert fib_dev(fabric, "10.96.0.20") == {"eth1"}
    wait_for(lambda: fib_dev(fabric, "fd00:96::20") == {"eth1"}, 10, what="FIB /128")
    assert fib_dev(fabric, "fd00:96::10") == {"eth1", "eth2"}

    # One Cluster Service inside still healthy keeps the aggregate.
    cluster.ready("web", "node2", ready=False)
    kept = ({V4, "10.96.0.20/32", "10.97.0.5/32"}, {V6, "fd00:96::20/128"})
    assert all(found == kept for found in sample(lambda: ribs(fabric), 2.0, 0.1))
    # Nothing Cluster-policy healthy inside: withdrawn (the Local one keeps only its own route).
    cluster.ready("api", "node2", ready=False)
    wait_ribs(fabric, {"10.96.0.20/32", "10.97.0.5/32"}, {"fd00:96::20/128"}, timeout=10)
    cluster.ready("api", "node2")
    wait_ribs(fabric, *kept, timeout=10)
    assert fabric.next_hops(V4) == {node1[1], node2[1]}
    cluster.core.delete_namespaced_service("api", "default")
    wait_ribs(fabric, {"10.96.0.20/32", "10.97.0.5/32"}, {"fd00:96::20/128"}, timeout=10)
