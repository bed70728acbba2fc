"""Weighted ECMP on the real fabric (issue 19, part 1): cosmolet's nodes tag Local-policy routes
with their endpoint counts (link bandwidth), the FRR leaves install weighted next hops, the
kernel's hash follows the weights (IPv4 and IPv6), the spine weights the leaves by the sum
behind each, and a count change re-weights without a withdraw. Cluster-policy routes stay plain
ECMP, and so does a Local one as soon as one node's path is untagged (a rollout).

Three nodes in hybrid mode (BGP unnumbered), each on both leaves (``lab.ucmp.running``): the
third node lets one leaf lose a node while both keep several paths, which the spine's weighting
needs (FRR re-advertises no cumulative bandwidth for a single path).
"""

from __future__ import annotations

import time
from functools import partial

from lab import ucmp
from lab.demo import Story
from lab.fabric import Fabric, wait_established
from lab.netns import wait_for
from lab.node import Cosmolet

LB = "198.51.100.10"  # ETP Local, on every node's loopback (lab.fabric.SERVICE_IPS)
ITP4, ITP6 = "10.96.0.11", "fd00:96::11"  # ITP Local ClusterIPs, dual-stack
WEB = "10.96.0.10"  # Cluster policy
#: In the hybrid fabric, leaf port ethN goes to nodeN; the spine's ethN to leafN.
NODE_PORTS = {"eth1": "node1", "eth2": "node2", "eth3": "node3"}
#: The flow split must fall in this band for 3:1 (2,000 flows: one standard deviation of the
#: ratio is about 0.16).
SPLIT_3_TO_1 = (2.2, 4.0)


def on(counts: dict[str, int]) -> list[str]:
    """``{"node1": 3, "node2": 1}`` as ``Story.endpoints`` takes it: a node per endpoint."""
    return [node for node, count in counts.items() for _ in range(count)]


def leaf_weights(fabric: Fabric, leaf: int, prefix: str) -> dict[str, int]:
    weights = ucmp.fib_weights(fabric.leaves[leaf - 1], prefix)
    return {NODE_PORTS[dev]: weight for dev, weight in weights.items()}


def node_tags(fabric: Fabric, prefix: str) -> dict[str, int | None]:
    """leaf1's paths for ``prefix`` from the nodes (not the spine's): node -> link bandwidth."""
    tags = ucmp.link_bandwidths(fabric.router("leaf1"), prefix)
    return {NODE_PORTS[port]: value for port, value in tags.items() if port in NODE_PORTS}


def weighted(fabric: Fabric, prefix: str, expected: dict[str, int]) -> bool:
    return all(leaf_weights(fabric, leaf, prefix) == expected for leaf in (1, 2))


def wait_weighted(fabric: Fabric, prefix: str, expected: dict[str, int], timeout: float) -> None:
    """Until both leaves install ``prefix`` with ``expected`` weights; fail showing what they
    installed instead."""
    try:
        wait_for(partial(weighted, fabric, prefix, expected), timeout)
    except TimeoutError:
        seen = {leaf: leaf_weights(fabric, leaf, prefix) for leaf in (1, 2)}
        raise AssertionError(f"{prefix}: leaves installed {seen}, not {expected}") from None


def test_local_routes_are_weighted_by_endpoints_on_leaves_spine_and_in_the_hash() -> None:
    with ucmp.running(nodes=3) as fabric:
        wait_established(fabric)
        assert fabric.kubeconfig is not None
        cluster = Story(fabric.kubeconfig)
        cluster.service("local", ["10.96.0.12"], type="LoadBalancer", externalTrafficPolicy="Local")
        cluster.core.patch_namespaced_service_status(
            "local", "default", {"status": {"loadBalancer": {"ingress": [{"ip": LB}]}}}
        )
        cluster.endpoints("local", *on({"node1": 3, "node2": 1}))
        cluster.service(
            "itp", [ITP4, ITP6], ipFamilyPolicy="RequireDualStack", internalTrafficPolicy="Local"
        )
        cluster.endpoints("itp", *on({"node1": 3, "node2": 1}), ipv6=True)
        cluster.service("web", [WEB])
        cluster.endpoints("web", *on({"node1": 3, "node2": 1, "node3": 1}))

        # The leaves' FIB: 3 endpoints to 1 -> weights 75/25 (FRR scales them to 100).
        for prefix in (LB, ITP4, ITP6):
            wait_weighted(fabric, prefix, {"node1": 75, "node2": 25}, 30)
        # Each node's path carries its count times the same unit; node3 has no endpoint.
        tags = node_tags(fabric, LB)
        assert set(tags) == {"node1", "node2"}, tags
        unit = tags["node2"]
        assert unit and tags["node1"] == 3 * unit, tags
        # A Cluster-policy address: plain ECMP over the three nodes, no community at all.
        wait_weighted(fabric, WEB, {f"node{n}": 1 for n in (1, 2, 3)}, 20)
        assert node_tags(fabric, WEB) == {f"node{n}": None for n in (1, 2, 3)}

        # The kernel hashes by the weights: 2,000 flows from the client through spine and leaf.
        nodes = {f"node{n}": fabric.nodes[n - 1] for n in (1, 2, 3)}
        split = ucmp.flow_split(fabric.client, nodes, LB, flows=2000)
        print(f"flow split for 3:1 endpoints: {split.received} (lost {split.lost})")
        assert split.received["node3"] == 0 and split.lost <= 20, split
        assert SPLIT_3_TO_1[0] <= split.ratio("node1", "node2") <= SPLIT_3_TO_1[1], split
        split6 = ucmp.flow_split(fabric.client, nodes, ITP6, flows=2000, first_port=40000)
        print(f"flow split for 3:1 endpoints, IPv6: {split6.received} (lost {split6.lost})")
        assert SPLIT_3_TO_1[0] <= split6.ratio("node1", "node2") <= SPLIT_3_TO_1[1], split6
        plain = ucmp.flow_split(fabric.client, nodes, WEB, flows=1500, first_port=30000)
        print(f"flow split for the Cluster-policy address: {plain.received}")
        assert all(300 <= count <= 700 for count in plain.received.values()), plain

        # The spine: each leaf re-advertises the sum of its paths (3 + 1 endpoints each).
        spine = ucmp.link_bandwidths(fabric.router("spine"), LB)
        assert spine == {"eth1": 4 * unit, "eth2": 4 * unit}, spine
        assert ucmp.fib_weights(fabric.spine, LB) == {"eth1": 50, "eth2": 50}

        # node2 goes to 3 endpoints: re-weighted 1:1 as an attribute change. Sampled for 2 s
        # and until the FIB shows 1:1, node2's path is at every sample in leaf1's RIB and FIB.
        cluster.endpoints("local", *on({"node1": 3, "node2": 3}))
        samples: list[tuple[int | None, int | None]] = []
        started, took = time.monotonic(), None
        while took is None or time.monotonic() - started < 2:
            assert time.monotonic() - started < 20, f"not re-weighted 1:1: {samples[-5:]}"
            fib = leaf_weights(fabric, 1, LB)
            samples.append((node_tags(fabric, LB).get("node2"), fib.get("node2")))
            if took is None and weighted(fabric, LB, {"node1": 50, "node2": 50}):
                took = time.monotonic() - started
        print(f"re-weighted 1:1 in {took:.2f} s; node2's path sampled {len(samples)} times")
        missing = [sample for sample in samples if None in sample]
        assert not missing, f"node2's path left leaf1's RIB or FIB: {missing}"
        assert {rib for rib, _ in samples} <= {unit, 3 * unit}, samples  # 1 then 3 endpoints
        assert node_tags(fabric, LB) == {"node1": 3 * unit, "node2": 3 * unit}

        # The spine weights the leaves by what is behind them: node3 (6 endpoints) loses its
        # link to leaf1, so leaf1 has 3 + 3 and leaf2 3 + 3 + 6 endpoints.
        cluster.endpoints("local", *on({"node1": 3, "node2": 3, "node3": 6}))
        wait_weighted(fabric, LB, {"node1": 25, "node2": 25, "node3": 50}, 20)
        fabric.nodes[2].ip("link", "set", "dev", "eth1", "down")
        wait_for(
            lambda: ucmp.fib_weights(fabric.spine, LB) == {"eth1": 33, "eth2": 66},
            20,
            what="the spine weights leaf1 6 to leaf2 12",
        )
        spine = ucmp.link_bandwidths(fabric.router("spine"), LB)
        assert spine["eth2"] == 2 * spine["eth1"], spine  # type: ignore[operator]

        # A rollout: node3 restarts with weighted ECMP off, its path now untagged. leaf2 falls
        # back to plain ECMP for the address rather than starving node3; leaf1 (node1 and
        # node2, both tagged) stays weighted.
        old = fabric.agents[2]
        old.stop()
        services = {**old.config["services"], "weightedEcmp": {"enabled": False}}
        config = {**old.config, "services": services}
        fabric.agents[2] = Cosmolet(old.ns, old.directory, config, old.kubeconfig).start()
        wait_for(
            lambda: leaf_weights(fabric, 2, LB) == {"node1": 1, "node2": 1, "node3": 1},
            30,
            what="leaf2 back to plain ECMP with node3 untagged",
        )
        assert leaf_weights(fabric, 1, LB) == {"node1": 50, "node2": 50}
