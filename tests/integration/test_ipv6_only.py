"""IPv6-only nodes for real (issue 22): no IPv4 address on the nodes, one config without
``routerId``, ``NODE_IP`` an IPv6 address, the lab API server at ``[::1]``; FRR leaves in
network namespaces say what they received (``vtysh ... json``) and installed (``ip -j route``).
"""

from __future__ import annotations

import json
import time
from functools import partial
from typing import Any

from cosmolet.engine.router_ids import derived_router_id
from cosmolet.kube.router_ids import RECHECK_SECONDS
from lab.fabric import Fabric, node_ipv6, numbered_addresses
from lab.ipv6_only import DUAL4, DUAL6, PREFER, V6, next_hops, remote_router_ids, running
from lab.netns import Lab, wait_for
from lab.node import http_get

UNSENT_IPV4 = "IPv4 routes planned but no IPv4 session: sent to no peer"


def derived(index: int) -> str:
    found = derived_router_id(node_ipv6(index), "")
    assert found is not None
    return found[0]


def status(fabric: Fabric, index: int) -> dict[str, Any]:
    code, body = http_get(fabric.nodes[index - 1], "/status")
    assert code == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def leaf_routes(fabric: Fabric, leaf: int, family: int) -> dict[str, dict[str, Any]]:
    """The leaf kernel's BGP routes: prefix -> the route (``ip -j route``)."""
    found = fabric.leaves[leaf - 1].ip_json(f"-{family}", "route", "show", "proto", "bgp")
    return {route["dst"]: route for route in found}


def test_hybrid_ipv6_only_nodes_advertise_both_families_with_derived_router_ids(lab: Lab) -> None:
    started = time.monotonic()
    with running(lab) as (fabric, cluster):
        built = time.monotonic()
        cluster.services("node1", "node2")
        wanted6 = {V6, PREFER, DUAL6}

        def learned() -> bool:
            """Every Service route in leaf1's kernel via both nodes (ECMP)."""
            routes = {**leaf_routes(fabric, 1, 6), **leaf_routes(fabric, 1, 4)}
            found = [routes.get(prefix, {}).get("nexthops", []) for prefix in [*wanted6, DUAL4]]
            return all(len(hops) == 2 for hops in found)

        wait_for(learned, 60, what="leaf1 installs the IPv6 and IPv4 Service routes")
        done = time.monotonic()
        for prefix in wanted6:  # BGP next hops: the nodes' link-locals
            hops = next_hops(fabric.routers["leaf1"], f"{prefix}/128", "ipv6")
            assert all(hop.startswith("fe80:") for hop in hops), hops
        # the IPv4 route from nodes without IPv4: BGP next hops their IPv6 link-locals (RFC
        # 8950), which this FRR installs as 169.254.0.1 onlink on each node's port
        hops = next_hops(fabric.routers["leaf1"], f"{DUAL4}/32", "ipv4")
        assert len(hops) >= 2 and all(hop.startswith("fe80:") for hop in hops), hops
        kernel = leaf_routes(fabric, 1, 4)[DUAL4]["nexthops"]
        assert sorted(hop["dev"] for hop in kernel) == ["eth1", "eth2"], kernel
        # no other IPv4 route (but the client's subnet, from the spine, once its session is up)
        assert set(leaf_routes(fabric, 1, 4)) - {"10.2.0.0/24"} == {DUAL4}
        # two nodes, two different derived router ids, as the leaf read them from their OPENs
        ids = remote_router_ids(fabric.routers["leaf1"])
        node_ids = {ids["eth1"], ids["eth2"]}  # leaf1's eth<N> is node N
        assert node_ids == {derived(1), derived(2)} and derived(1) != derived(2), ids
        assert ids["eth1"] == derived(1)
        found = status(fabric, 1)
        assert found["routerId"] == derived(1)
        assert found["routerIdFrom"] == f"derived from NODE_IP {node_ipv6(1)}"
        assert not [p for p in found["peerProblems"] if p["entry"] == "bgp.routerId"], found
        # hybrid sessions carry IPv4 too (RFC 8950): no family planned and sent nowhere
        assert not [p for p in found["peerProblems"] if p["problem"] == UNSENT_IPV4], found
        # http.listen [::]:9179: the probes answer at the node's IPv6 address
        assert http_get(fabric.nodes[0], "/readyz", host=node_ipv6(1))[0] == 200
        # through the spine, once its sessions with the leaves are up too (a loaded machine)
        for address in (V6, PREFER):
            wait_for(partial(fabric.ping, address), 30, what=f"the client pings {address}")
        print(
            f"IPv6-only hybrid: fabric and agents up in {built - started:.1f} s; every Service "
            f"route in leaf1's FIB via both nodes {done - built:.2f} s after the Services"
        )


def test_numbered_ipv6_only_interface_peers_and_a_router_id_collision(lab: Lab) -> None:
    """Two /127 interface peers per node; node2's Node annotation gives it node1's derived id,
    and node1 says so in its log and ``/status``."""
    clash = {2: {"cosmolet.io/router-id": derived(1)}}
    with running(lab, "numbered", annotations=clash) as (fabric, cluster):
        assert fabric.agents[0].config["bgp"]["peers"][0] == {"interface": "eth1", "asn": 65101}
        cluster.services("node1", "node2")
        leaf1 = fabric.routers["leaf1"]
        node_v6 = {numbered_addresses(1, n)[3] for n in (1, 2)}
        wait_for(
            lambda: set(next_hops(leaf1, f"{V6}/128", "ipv6")) == node_v6,
            60,
            what="leaf1 learns fd00:96::20 from both nodes' /127 addresses",
        )
        ids = remote_router_ids(leaf1)
        assert ids[numbered_addresses(1, 1)[3]] == derived(1)
        assert ids[numbered_addresses(1, 2)[3]] == derived(1)  # node2's annotation: a clash
        found = status(fabric, 1)
        assert found["routerIdFrom"] == f"derived from NODE_IP {node_ipv6(1)}"
        assert found["routerId"] == derived(1)

        def clash_reported() -> bool:
            problems = status(fabric, 1)["peerProblems"]
            return any(
                p["entry"] == "bgp.routerId" and "node node2 has the same router id" in p["problem"]
                for p in problems
            )

        wait_for(clash_reported, 30, what="node1's /status names node2")
        logged = [line for line in fabric.agents[0].logs() if "router id" in line.get("event", "")]
        assert any("node2" in json.dumps(line) for line in logged), logged
        assert not [p for p in status(fabric, 2)["peerProblems"] if p["entry"] == "bgp.routerId"]
        # the dual-stack Service's IPv4 address is planned, and no session carries IPv4
        unsent = {"entry": "bgp.peers", "problem": UNSENT_IPV4}
        assert unsent in status(fabric, 1)["peerProblems"]
        wait_for(partial(fabric.ping, V6), 30, what=f"the client pings {V6}")
        # the operator gives node2 another id: node1, still looking every minute while the
        # collision stands, stops reporting it within a minute (and a tick)
        fixed = time.monotonic()
        other = {"metadata": {"annotations": {"cosmolet.io/router-id": "10.7.7.7"}}}
        cluster.core.patch_node("node2", other)
        wait_for(lambda: not clash_reported(), RECHECK_SECONDS + 20, what="the clash cleared")
        print(
            f"collision cleared from node1's /status {time.monotonic() - fixed:.1f} s after the fix"
        )
