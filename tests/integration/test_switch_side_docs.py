"""The switch configurations of ``docs/switch-side.md``, run as written against real cosmolet
nodes (ExaBGP + agent) in network namespaces, so that what the page claims of them holds: the
nodes' sessions come up through a listen range or interface neighbors, the service routes reach
the leaf's FIB (ECMP over the nodes), a prefix outside the filter is received but refused,
nothing is sent back to the nodes, a node's routes stay as stale across its graceful restart,
and BFD comes up with the unnumbered node's bfdd. In hybrid mode with BFD, the node's routes
stay as stale only when ExaBGP's session closes before bfdd stops (docs/upgrading.md)."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

import pytest

from cosmolet.config.schema import validate
from cosmolet.hybrid import frr_config
from lab.netns import FrrRouter, Lab, Namespace, wait_for
from lab.node import Cosmolet
from tests.factories import family_slices, service
from tests.integration.conftest import sample
from tests.unit.test_docs import frr_block

WEB = "10.96.0.10"
DUAL = ("10.96.0.11", "fd00:96::11")
OUTSIDE = "192.0.2.66"  # allowed by the node's config, refused by the leaf's prefix list


def objects() -> list[dict[str, Any]]:
    return [
        service("web", cluster_ips=(WEB,)),
        *family_slices("web", (WEB,)),
        service("dual", cluster_ips=DUAL),
        *family_slices("dual", DUAL),
        service("outside", cluster_ips=("10.96.0.12",), external_ips=[OUTSIDE]),
        *family_slices("outside", ("10.96.0.12",)),
    ]


ADVERTISE_OUTSIDE = {"externalIPs": {"enabled": True, "allowedCIDRs": ["192.0.2.0/24"]}}


def bgp_prefixes(router: FrrRouter, family: str) -> set[str]:
    return set(router.json(f"show bgp {family} unicast json").get("routes", {}))


def fib_next_hops(leaf: Namespace, prefix: str) -> int:
    """How many next hops the leaf's kernel has for ``prefix`` (BGP routes only)."""
    routes = [r for r in leaf.ip_json("route", "show", prefix) if r.get("protocol") == "bgp"]
    if not routes:
        return 0
    return len(routes[0].get("nexthops", [])) or 1


def paths_from(router: FrrRouter, prefix: str, peer: str) -> list[dict[str, Any]]:
    """The paths of ``prefix`` learned from ``peer`` (an address, or its start)."""
    paths = router.json(f"show bgp ipv4 unicast {prefix} json").get("paths", [])
    return [p for p in paths if str(p.get("peer", {}).get("peerId", "")).startswith(peer)]


def neighbor_prefixes(router: FrrRouter, peer: str, what: str) -> set[str]:
    """``received-routes`` or ``advertised-routes`` of one neighbor, as a set of prefixes."""
    text = router.vtysh(f"show bgp ipv4 unicast neighbors {peer} {what} json")
    data = json.loads(text or "{}")
    return set(data.get("receivedRoutes" if what == "received-routes" else "advertisedRoutes", {}))


def test_numbered_leaf_block(lab: Lab) -> None:
    leaf = lab.namespace("leaf")
    nodes = []
    for index in (1, 2):
        node = lab.namespace(f"node{index}")
        lab.link(leaf, f"swp{index}", node, "eth1")
        leaf.ip("addr", "add", f"10.1.{index}.0/31", "dev", f"swp{index}")
        leaf.ip("addr", "add", f"fd10:1:{index}::/127", "dev", f"swp{index}", "nodad")
        node.ip("addr", "add", f"10.1.{index}.1/31", "dev", "eth1")
        node.ip("addr", "add", f"fd10:1:{index}::1/127", "dev", "eth1", "nodad")
        nodes.append(node)
    router = lab.frr(leaf, frr_block("numbered-leaf"))

    def cosmolet(index: int) -> Cosmolet:
        config = {
            "nodeName": f"node{index}",
            "bgp": {
                "asn": 65001,
                "routerId": f"10.1.{index}.1",
                "peers": [
                    {"address": f"10.1.{index}.0", "asn": 65101},
                    {"address": f"fd10:1:{index}::", "asn": 65101},
                ],
            },
            "services": {"advertise": ADVERTISE_OUTSIDE},
        }
        agent = Cosmolet(nodes[index - 1], lab.workdir / f"node{index}-agent", config)
        agent.set_objects(objects())
        return agent.start()

    agents = [cosmolet(1), cosmolet(2)]
    expected = {f"{WEB}/32", f"{DUAL[0]}/32", "10.96.0.12/32"}
    wait_for(lambda: bgp_prefixes(router, "ipv4") == expected, 60, what="leaf IPv4 table")
    wait_for(lambda: bgp_prefixes(router, "ipv6") == {f"{DUAL[1]}/128"}, 30, what="IPv6")
    wait_for(lambda: fib_next_hops(leaf, WEB) == 2, 10, what="ECMP over both nodes")
    # Sent by the node, kept before the filter, refused by the prefix list; nothing sent back.
    assert f"{OUTSIDE}/32" in neighbor_prefixes(router, "10.1.1.1", "received-routes")
    assert f"{OUTSIDE}/32" not in bgp_prefixes(router, "ipv4")
    assert neighbor_prefixes(router, "10.1.1.1", "advertised-routes") == set()

    # Graceful restart through the listen range: node1's path stays, stale, while it is away.
    assert agents[0].stop() == 0
    wait_for(
        lambda: any(p.get("stale") for p in paths_from(router, WEB, "10.1.1.1")),
        15,
        what="node1's path kept as stale",
    )
    assert fib_next_hops(leaf, WEB) == 2
    cosmolet(1)
    wait_for(
        lambda: [p.get("stale", False) for p in paths_from(router, WEB, "10.1.1.1")] == [False],
        60,
        what="node1's path fresh again after its End-of-RIB",
    )
    for agent in agents[1:]:
        agent.stop()


@pytest.mark.parametrize("bfdd_first", [False, True], ids=["agent-stops-first", "bfdd-stops-first"])
def test_unnumbered_leaf_block(lab: Lab, bfdd_first: bool) -> None:
    leaf = lab.namespace("leaf")
    node = lab.namespace("node1")
    lab.link(leaf, "swp1", node, "eth1")
    router = lab.frr(leaf, frr_block("unnumbered-leaf"), daemons=("zebra", "bgpd", "bfdd"))
    node_dir = lab.workdir / node.name
    config: dict[str, Any] = {
        "mode": "hybrid",
        "nodeName": "node1",
        "bgp": {
            "asn": 65001,
            "routerId": "192.0.2.1",
            "interfaces": ["eth1"],
            "peerAsn": "auto",
            "bfd": {"enabled": True, "vtyshSocketDir": str(node_dir)},
        },
        "services": {"advertise": ADVERTISE_OUTSIDE},
    }
    sidecar = lab.frr(
        node, frr_config.render(validate(config), ["eth1"]), daemons=("zebra", "bfdd")
    )
    agent = Cosmolet(node, lab.workdir / "node1-agent", config)
    agent.set_objects(objects())
    agent.start()
    expected = {f"{WEB}/32", f"{DUAL[0]}/32", "10.96.0.12/32"}
    wait_for(lambda: bgp_prefixes(router, "ipv4") == expected, 60, what="leaf IPv4 table")
    wait_for(lambda: bgp_prefixes(router, "ipv6") == {f"{DUAL[1]}/128"}, 30, what="IPv6")
    wait_for(partial(fib_next_hops, leaf, WEB), 10, what="in the leaf's FIB")
    assert f"{OUTSIDE}/32" in neighbor_prefixes(router, "swp1", "received-routes")
    assert f"{OUTSIDE}/32" not in bgp_prefixes(router, "ipv4")
    assert neighbor_prefixes(router, "swp1", "advertised-routes") == set()
    wait_for(
        lambda: '"status":"up"' in router.vtysh("show bfd peers json").replace(" ", ""),
        30,
        what="BFD up between the leaf's profile and the node's bfdd",
    )
    # A pod restart under graceful restart, cosmolet and the FRR sidecar both stopping. When
    # ExaBGP's session closes first, the leaf keeps the node's routes as stale (graceful
    # restart) and bfdd stopping next changes nothing. When bfdd stops first, FRR 8.4's leaf
    # takes it as BFD down, sends Cease/BFD Down (6/10) and drops the routes at once.
    if bfdd_first:
        # The leaf acts on BFD down within the detect time (3 x 300 ms): the agent is stopped
        # after that, as a pod whose sidecar dies first would be; stopping it at once raced the
        # detection on a loaded machine (the session closing first leaves the routes stale).
        sidecar.stop("bfdd")
        wait_for(lambda: not paths_from(router, WEB, "fe80"), 15, what="routes dropped")
        agent.stop()
        assert "6/10 (Cease/BFD Down)" in (router.directory / "bgpd.log").read_text()
        return
    assert agent.stop() == 0
    sidecar.stop("bfdd")
    stale = sample(lambda: [p.get("stale") for p in paths_from(router, WEB, "fe80")], 5, 0.1)
    assert all(paths == [True] for paths in stale[5:]), stale
    assert fib_next_hops(leaf, WEB) == 1
