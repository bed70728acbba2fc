"""The engine's weighted ECMP and aggregate routes on the wire: `cosmolet start` -> real ExaBGP
-> a real FRR leaf (numbered), reading what the leaf received. The fabric-wide behaviour
(weights in the leaves' FIBs, flow splits, the spine) is tests/integration/test_ucmp.py's and
test_aggregate.py's; this checks the exact community and prefixes one node sends."""

from __future__ import annotations

import os
import signal
from typing import Any

from lab.netns import wait_for
from lab.numbered import NumberedFabric
from tests.factories import endpoint, service, slice_
from tests.integration.conftest import sample

LB = "198.51.100.10"


def lb_local(endpoints_here: int) -> list[dict[str, Any]]:
    """An externalTrafficPolicy Local LB Service with ``endpoints_here`` endpoints on node1
    and two elsewhere."""
    here = [endpoint(f"10.244.1.{i}", "node1") for i in range(1, endpoints_here + 1)]
    elsewhere = [endpoint(f"10.244.2.{i}", "node2") for i in (1, 2)]
    return [
        service("lb", cluster_ips=None, type="LoadBalancer", lb_ips=[LB], external_policy="Local"),
        slice_("lb", here + elsewhere),
    ]


def cluster_ip(name: str, ip: str, ready: bool = True, **kw: Any) -> list[dict[str, Any]]:
    """A ClusterIP Service with two endpoints on node1, ready or not."""
    family = "IPv6" if ":" in ip else "IPv4"
    base = "fd00:244::" if family == "IPv6" else "10.244.3."
    endpoints = [endpoint(f"{base}{i}", "node1", ready=ready) for i in (1, 2)]
    return [service(name, cluster_ips=(ip,), **kw), slice_(name, endpoints, address_type=family)]


def path(fabric: NumberedFabric, prefix: str, family: str = "ipv4") -> dict[str, Any]:
    paths = fabric.frr.json(f"show bgp {family} unicast {prefix} json").get("paths", [])
    return paths[0] if paths else {}


def bandwidth(fabric: NumberedFabric, prefix: str, family: str = "ipv4") -> str | None:
    extended = path(fabric, prefix, family).get("extendedCommunity")
    return None if extended is None else str(extended["string"])


def test_bandwidth_and_aggregates_as_the_leaf_receives_them(fabric: NumberedFabric) -> None:
    node = fabric.cosmolet(
        services={
            "advertise": {
                "clusterIP": {"enabled": True, "aggregate": ["10.96.0.0/24", "fd00:96::/120"]},
                "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
            }
        }
    )
    inside = cluster_ip("a", "10.96.0.1") + cluster_ip("b", "10.96.0.2")
    local = cluster_ip("loc", "10.96.0.3", internal_policy="Local")  # two endpoints here
    v6 = cluster_ip("six", "fd00:96::6")
    node.set_objects(lb_local(3) + inside + local + v6 + cluster_ip("out", "10.96.7.7"))
    node.start()
    fabric.wait_rib({f"{LB}/32", "10.96.0.0/24", "10.96.0.3/32", "10.96.7.7/32"})
    fabric.wait_rib({"fd00:96::/120"}, "ipv6")

    # 3 endpoints at 1 Mbit/s each: 375,000 bytes/s, from the node's AS
    assert bandwidth(fabric, f"{LB}/32") == "LB:65001:375000 (3.000 Mbps)"
    assert bandwidth(fabric, "10.96.0.3/32") == "LB:65001:250000 (2.000 Mbps)"
    assert bandwidth(fabric, "10.96.0.0/24") is None  # the aggregate: no weight
    assert bandwidth(fabric, "10.96.7.7/32") is None  # Cluster policy: plain ECMP
    assert bandwidth(fabric, "fd00:96::/120", "ipv6") is None
    wait_for(lambda: {f"{LB}/32", "10.96.0.0/24"} <= fabric.fib(4), 10)

    # One endpoint fewer: re-announced with the new value, never withdrawn meanwhile.
    updates = fabric.updates_received(fabric.NODE_V4)
    node.set_objects(lb_local(1) + inside + local + v6 + cluster_ip("out", "10.96.7.7"))
    seen = sample(lambda: bandwidth(fabric, f"{LB}/32"), 5, 0.05)
    assert None not in seen and seen[-1] == "LB:65001:125000 (1.000 Mbps)"
    assert fabric.updates_received(fabric.NODE_V4) == updates + 1

    # Nothing healthy inside the aggregates: withdrawn; the Local /32 and the rest stay.
    down = cluster_ip("a", "10.96.0.1", ready=False) + cluster_ip("b", "10.96.0.2", ready=False)
    six_down = cluster_ip("six", "fd00:96::6", ready=False)
    node.set_objects(lb_local(1) + down + local + six_down + cluster_ip("out", "10.96.7.7"))
    fabric.wait_rib({f"{LB}/32", "10.96.0.3/32", "10.96.7.7/32"}, timeout=10)
    fabric.wait_rib(set(), "ipv6", timeout=10)


def test_a_respawned_agent_withdraws_an_aggregate_no_longer_wanted(
    fabric: NumberedFabric,
) -> None:
    """The journal keeps the aggregate's CIDR: killed while the Services inside go unhealthy,
    the respawned agent withdraws the aggregate, and nothing else."""
    node = fabric.cosmolet(
        services={"advertise": {"clusterIP": {"enabled": True, "aggregate": ["10.96.0.0/24"]}}}
    )
    out = cluster_ip("out", "10.96.7.7")
    node.set_objects(cluster_ip("a", "10.96.0.1") + out)
    node.start()
    fabric.wait_rib({"10.96.0.0/24", "10.96.7.7/32"})
    first = node.agent_pid()
    os.kill(first, signal.SIGKILL)
    node.set_objects(cluster_ip("a", "10.96.0.1", ready=False) + out)
    seen = sample(lambda: set(fabric.rib()), 6, 0.05)
    assert all("10.96.7.7/32" in rib for rib in seen)
    assert node.agent_pid() != first
    fabric.wait_rib({"10.96.7.7/32"}, timeout=10)
