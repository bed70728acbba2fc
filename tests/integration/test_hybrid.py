"""Hybrid mode end to end: BGP unnumbered to two FRR leaves, ExaBGP the only speaker on the
node, FRR zebra only sending router advertisements, pings through the fabric."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from cosmolet.config.schema import validate
from cosmolet.hybrid import frr_config
from lab.frr_configs import unnumbered_leaf
from lab.netns import FrrRouter, Lab, Namespace, wait_for
from lab.node import Cosmolet, metric_samples
from tests.factories import family_slices, service
from tests.integration.conftest import sample

SERVICE_V4 = "10.96.0.10"
SERVICE_V6 = "fd00:96::10"


@dataclass
class HybridFabric:
    lab: Lab
    node: Namespace
    leaves: list[Namespace]
    routers: list[FrrRouter]
    hosts: list[Namespace]

    def fib_next_hop(self, leaf: int, prefix: str, family: int = 4) -> str | None:
        routes = self.leaves[leaf].ip_json(f"-{family}", "route", "show", prefix)
        for route in routes:
            if route.get("protocol") == "bgp":
                via = route.get("via", {})
                return str(via.get("host") or route.get("gateway"))
        return None

    def via(self, leaf: int, prefix: str, next_hop: str | None) -> bool:
        return self.fib_next_hop(leaf, prefix, 6 if ":" in prefix else 4) == next_hop

    def has_route(self, leaf: int, prefix: str) -> bool:
        return self.fib_next_hop(leaf, prefix, 6 if ":" in prefix else 4) is not None

    def ping(self, host: int, address: str) -> bool:
        flag = "-6" if ":" in address else "-4"
        ns = self.hosts[host]
        return (
            ns.run("ping", flag, "-c", "1", "-W", "1", address, check=False).count(
                " 0% packet loss"
            )
            == 1
        )


#: The link-local address both leaves use on their node-facing port in ``same_link_local``.
SHARED_LINK_LOCAL = "fe80::1"


def build_hybrid(
    lab: Lab,
    bfd_leaves: tuple[bool, bool] = (False, False),
    same_link_local: bool = False,
    leaf_as: tuple[int, int] = (65101, 65102),
    remote_as: str = "external",
) -> HybridFabric:
    """The node (AS 65001) on ``eth1``/``eth2`` to two leaves; ``same_link_local``: both leaves
    use the static ``fe80::1`` on their port to the node (no address of the kernel's), as many
    fabrics configure every leaf."""
    node = lab.namespace("node1")
    leaves, routers, hosts = [], [], []
    for index in (1, 2):
        leaf = lab.namespace(f"leaf{index}")
        host = lab.namespace(f"host{index}")
        lab.link(node, f"eth{index}", leaf, "eth1")
        if same_link_local:
            leaf.run("sysctl", "-qw", "net.ipv6.conf.eth1.addr_gen_mode=1")  # none of its own
            leaf.ip("-6", "addr", "flush", "dev", "eth1", "scope", "link")
            leaf.ip("-6", "addr", "add", f"{SHARED_LINK_LOCAL}/64", "dev", "eth1", "nodad")
        lab.link(leaf, "eth2", host, "eth1")
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            leaf.run("sysctl", "-qw", key)
        leaf.ip("addr", "add", f"10.1.{index}.1/24", "dev", "eth2")
        leaf.ip("addr", "add", f"fd01:{index}::1/64", "dev", "eth2", "nodad")
        host.ip("addr", "add", f"10.1.{index}.2/24", "dev", "eth1")
        host.ip("addr", "add", f"fd01:{index}::2/64", "dev", "eth1", "nodad")
        host.ip("route", "add", "default", "via", f"10.1.{index}.1")
        host.ip("-6", "route", "add", "default", "via", f"fd01:{index}::1")
        bfd = bfd_leaves[index - 1]
        leaf_config = unnumbered_leaf(
            f"leaf{index}", leaf_as[index - 1], f"10.255.0.{index}", ["eth1"], bfd=bfd
        ).replace(" remote-as external", f" remote-as {remote_as}")
        daemons = ("zebra", "bgpd", "bfdd") if bfd else ("zebra", "bgpd")
        routers.append(lab.frr(leaf, leaf_config, daemons=daemons))
        leaves.append(leaf)
        hosts.append(host)
    # The node holds its service IPs itself, standing in for the CNI.
    node.ip("addr", "add", f"{SERVICE_V4}/32", "dev", "lo")
    node.ip("addr", "add", f"{SERVICE_V6}/128", "dev", "lo")
    return HybridFabric(lab, node, leaves, routers, hosts)


def hybrid_config(lab: Lab) -> dict[str, Any]:
    return {
        "mode": "hybrid",
        "nodeName": "node1",
        "bgp": {"asn": 65001, "routerId": "192.0.2.1", "interfaces": ["eth*"], "peerAsn": "auto"},
    }


def web(ready: bool = True, **kw: Any) -> list[dict[str, Any]]:
    """The dual-stack Service "web", with an EndpointSlice per family."""
    return [
        service("web", cluster_ips=(SERVICE_V4, SERVICE_V6), **kw),
        *family_slices("web", (SERVICE_V4, SERVICE_V6), ready=ready),
    ]


def start_node(
    fabric: HybridFabric, objects: list[dict[str, Any]] | None = None, **bgp: Any
) -> Cosmolet:
    config = hybrid_config(fabric.lab)
    config["bgp"].update(bgp)
    zebra_conf = frr_config.render(validate(config), ["eth1", "eth2"])
    fabric.lab.frr(fabric.node, zebra_conf, daemons=("zebra",))
    node = Cosmolet(fabric.node, fabric.lab.workdir / "node1-agent", config)
    node.set_objects(web() if objects is None else objects)
    return node.start()


@pytest.fixture
def hybrid(lab: Lab) -> HybridFabric:
    return build_hybrid(lab)


def established(router: FrrRouter) -> bool:
    peers = router.json("show bgp summary json").get("ipv4Unicast", {}).get("peers", {})
    return any(peer.get("state") == "Established" for peer in peers.values())


def test_unnumbered_sessions_routes_and_pings(hybrid: HybridFabric) -> None:
    node = start_node(hybrid)
    for index in (0, 1):
        wait_for(partial(established, hybrid.routers[index]), 60, what=f"leaf{index + 1} session")
        node_ll = hybrid.node.link_local(f"eth{index + 1}")
        # RFC 8950: the IPv4 service route via the node's link-local on *that* link.
        wait_for(
            partial(hybrid.via, index, SERVICE_V4, node_ll),
            20,
            what=f"leaf{index + 1} IPv4 route via {node_ll}",
        )
        wait_for(
            partial(hybrid.via, index, SERVICE_V6, node_ll),
            20,
            what=f"leaf{index + 1} IPv6 route via {node_ll}",
        )

    # Return path for the pings: the hosts' subnets via each leaf's link-local.
    for index in (0, 1):
        leaf_ll = hybrid.leaves[index].link_local("eth1")
        hybrid.node.ip(
            "route",
            "add",
            f"10.1.{index + 1}.0/24",
            "via",
            "inet6",
            leaf_ll,
            "dev",
            f"eth{index + 1}",
        )
        hybrid.node.ip(
            "-6", "route", "add", f"fd01:{index + 1}::/64", "via", leaf_ll, "dev", f"eth{index + 1}"
        )
    for host in (0, 1):
        assert wait_for(partial(hybrid.ping, host, SERVICE_V4), 10)
        assert wait_for(partial(hybrid.ping, host, SERVICE_V6), 10)

    # Unhealthy: withdrawn from both leaves.
    node.set_objects(web(ready=False))
    for index in (0, 1):
        wait_for(partial(hybrid.via, index, SERVICE_V4, None), 10)
    assert node.stop(signal.SIGTERM) is not None


def test_two_leaves_with_the_same_link_local_each_get_the_next_hop_of_their_link(
    lab: Lab,
) -> None:
    """Both leaves are fe80::1 on their port: each ExaBGP neighbor must be sent its own link's
    next hop (a line to "neighbor fe80::1" went to both with one link's next hop, which the
    other leaf accepted and blackholed), and a withdraw must reach both."""
    fabric = build_hybrid(lab, same_link_local=True)
    node = start_node(fabric)
    for index in (0, 1):
        wait_for(partial(established, fabric.routers[index]), 60, what=f"leaf{index + 1} session")
    for index in (0, 1):
        node_ll = fabric.node.link_local(f"eth{index + 1}")
        for prefix in (SERVICE_V4, SERVICE_V6):
            wait_for(
                partial(fabric.via, index, prefix, node_ll),
                20,
                what=f"leaf{index + 1} {prefix} via {node_ll}",
            )
        paths = fabric.routers[index].json(f"show bgp ipv4 unicast {SERVICE_V4}/32 json")
        assert {hop["ip"] for path in paths["paths"] for hop in path["nexthops"]} == {node_ll}
    # One series per session, named by its link.
    samples = metric_samples(fabric.node)
    names = [f"{SHARED_LINK_LOCAL}%eth1", f"{SHARED_LINK_LOCAL}%eth2"]
    for name in names:
        assert samples["cosmolet_bgp_session_up", (("peer", name),)] == 1.0
        for family in ("ipv4", "ipv6"):
            key = ("cosmolet_routes_advertised", (("family", family), ("peer", name)))
            assert samples[key] == 1.0

    node.set_objects(web(ready=False))
    for index in (0, 1):
        for prefix in (SERVICE_V4, SERVICE_V6):
            wait_for(partial(fabric.via, index, prefix, None), 10, what=f"leaf{index + 1} {prefix}")
    assert node.stop(signal.SIGTERM) is not None


def test_an_auto_peer_that_is_ibgp_gets_local_preference_and_no_prepends(lab: Lab) -> None:
    """The leaves are in our AS (``remote-as internal``) and ``peerAsn`` is auto: the OPEN says
    iBGP, so the local preference goes out and our AS is not prepended (the leaf would discard
    the path as a loop)."""
    fabric = build_hybrid(lab, leaf_as=(65001, 65001), remote_as="internal")
    tuned = {"cosmolet.io/as-path-prepend": "2", "cosmolet.io/local-preference": "300"}
    node = start_node(fabric, web(annotations=tuned), localPreference=150)
    for index in (0, 1):
        wait_for(partial(established, fabric.routers[index]), 60, what=f"leaf{index + 1} session")
        wait_for(partial(fabric.has_route, index, SERVICE_V4), 20, what=f"leaf{index + 1} route")
        path = fabric.routers[index].json(f"show bgp ipv4 unicast {SERVICE_V4}/32 json")["paths"][0]
        assert path["locPrf"] == 300
        assert path["aspath"]["string"] in {"", "Local"}
    opens = [line for line in node.logs() if line.get("event") == "peer open"]
    assert sorted(line["asn"] for line in opens) == [65001, 65001]


def test_link_down_and_up_and_a_changed_link_local(hybrid: HybridFabric) -> None:
    start_node(hybrid)
    for index in (0, 1):
        wait_for(partial(hybrid.has_route, index, SERVICE_V4), 60)

    hybrid.node.ip("link", "set", "dev", "eth1", "down")
    wait_for(lambda: hybrid.fib_next_hop(0, SERVICE_V4) is None, 30, what="leaf1 loses it")
    assert all(
        hop is not None for hop in sample(lambda: hybrid.fib_next_hop(1, SERVICE_V4), 2, 0.1)
    )
    hybrid.node.ip("link", "set", "dev", "eth1", "up")
    wait_for(
        lambda: hybrid.fib_next_hop(0, SERVICE_V4) is not None,
        10,
        what="leaf1 relearns the route within 10 s of the link coming back",
    )

    # The node's link-local on eth2 changes: a new session, with the new next hop.
    old = hybrid.node.link_local("eth2")
    hybrid.node.ip("-6", "addr", "del", f"{old}/64", "dev", "eth2")
    hybrid.node.ip("-6", "addr", "add", "fe80::c05:1e7/64", "dev", "eth2", "nodad")
    wait_for(
        lambda: hybrid.fib_next_hop(1, SERVICE_V4) == "fe80::c05:1e7",
        40,
        what="leaf2 route via the new link-local",
    )


def start_bfd_node(lab: Lab) -> tuple[HybridFabric, FrrRouter, Cosmolet]:
    """The node with BFD at 100 ms x 3 (bfdd from a config with the profile and no peer: the
    agent adds them), once leaf1's BFD session is up; leaf2 runs no BFD."""
    fabric = build_hybrid(lab, bfd_leaves=(True, False))
    config = hybrid_config(lab)
    node_dir = lab.workdir / fabric.node.name
    config["bgp"]["bfd"] = {
        "enabled": True,
        "minRxMs": 100,
        "minTxMs": 100,
        "multiplier": 3,
        "vtyshSocketDir": str(node_dir),
    }
    frr = lab.frr(
        fabric.node,
        frr_config.render(validate(config), ["eth1", "eth2"]),
        daemons=("zebra", "bfdd"),
    )
    node = Cosmolet(fabric.node, lab.workdir / "node1-agent", config)
    node.set_objects(
        [
            service("web", cluster_ips=(SERVICE_V4, SERVICE_V6)),
            *family_slices("web", (SERVICE_V4, SERVICE_V6)),
        ]
    )
    node.start()
    for index in (0, 1):
        wait_for(partial(fabric.has_route, index, SERVICE_V4), 60)
    wait_for(
        lambda: '"status":"up"' in fabric.routers[0].vtysh("show bfd peers json").replace(" ", ""),
        30,
        what="leaf1's BFD session up",
    )
    return fabric, frr, node


def test_bfd_detects_a_silent_node_in_under_a_second(lab: Lab) -> None:
    """leaf1 runs BFD with the node, leaf2 does not. The node falls silent (ExaBGP and bfdd
    frozen with SIGSTOP): leaf1 drops its routes within a second, leaf2 at the hold time."""
    fabric, frr, node = start_bfd_node(lab)
    exabgp = int(Path(f"/proc/{node.agent_pid()}/stat").read_text().split(") ")[1].split()[1])
    frozen = [exabgp, frr.pids["bfdd"]]
    started = time.monotonic()
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        wait_for(partial(fabric.via, 0, SERVICE_V4, None), 5, 0.005, "leaf1 (BFD) withdraws")
        with_bfd = time.monotonic() - started
        wait_for(partial(fabric.via, 1, SERVICE_V4, None), 20, 0.01, "leaf2 (hold time)")
        without_bfd = time.monotonic() - started
    finally:
        for pid in frozen:
            os.kill(pid, signal.SIGCONT)
    print(
        f"\nsilent node detected: with BFD {with_bfd * 1000:.0f} ms, "
        f"without BFD (hold time 9 s) {without_bfd:.1f} s"
    )
    assert with_bfd < 1.0
    assert without_bfd > 3.0
    # Back: both leaves relearn the route.
    for index in (0, 1):
        wait_for(partial(fabric.has_route, index, SERVICE_V4), 40)


def test_bfd_peers_come_back_after_bfdd_restarts(lab: Lab) -> None:
    """bfdd restarted in the sidecar comes back with no peer: the agent notices (it asks bfdd
    every 5 s) and re-adds them, and leaf1's BFD session is up again, with the new bfdd (its
    discriminator changed), and leaf1 relearns the route its BFD session took down."""
    fabric, frr, _ = start_bfd_node(lab)

    def leaf_session() -> dict[str, Any]:
        peers: list[dict[str, Any]] = fabric.routers[0].json("show bfd peers json")
        return peers[0]

    before = leaf_session()["remote-id"]
    started = time.monotonic()
    frr.restart("bfdd")
    wait_for(
        lambda: leaf_session()["status"] == "up" and leaf_session()["remote-id"] != before,
        20,
        0.05,
        "leaf1's BFD session up with the restarted bfdd",
    )
    back = time.monotonic() - started
    print(f"\nBFD session up again {back:.1f} s after bfdd restarted")
    assert back < 12.0  # a check every 5 s, then bfdd's own slow start (1 s timers)
    wait_for(partial(fabric.has_route, 0, SERVICE_V4), 40, what="leaf1 relearns the route")
