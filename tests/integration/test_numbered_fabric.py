"""Numbered fabrics for real: one shared config, racks of real FRR ToRs in network namespaces, the
lab API server holding the Nodes, ``cosmolet start`` (ExaBGP + agent) on each node.

In the two-rack fabric node1 sits in rack r1 under leaf1 (AS 65101), node2 in rack r2 under
leaf2 (AS 65102), each on a /31 and a /127 of its own; both are linked to a collector (AS 65000)
that only nodes labelled ``bgp-collector=true`` peer with. node2's AS comes from its Node
annotation. The ToRs' AS is ``auto``: learned from their OPEN.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client, config

from cosmolet.config.schema import validate
from cosmolet.hybrid import frr_config
from lab.apiserver import Store, serving, write_kubeconfig
from lab.kube_client import put_endpoints
from lab.netns import Lab, wait_for
from lab.node import Cosmolet, http_get
from lab.numbered import COLLECTOR, RackFabric, build_racks, link_addresses
from tests.integration.conftest import sample

WEB_V4, WEB_V6 = "10.96.0.10", "fd00:96::10"
WEB, WEB6 = f"{WEB_V4}/32", f"{WEB_V6}/128"
COLLECTOR_LABEL = "bgp-collector"
SHARED: dict[str, Any] = {
    "mode": "numbered",
    "bgp": {
        "asn": 65001,
        "peers": [
            {"interface": "eth1", "asn": "auto"},  # the rack's ToR, whichever rack
            {
                "interface": "eth2",
                "asn": 65000,
                "nodeSelector": {"matchLabels": {COLLECTOR_LABEL: "true"}},
            },
        ],
    },
}


@dataclass
class Cluster:
    core: client.CoreV1Api
    discovery: client.DiscoveryV1Api
    kubeconfig: Path

    def node(self, name: str, labels: dict[str, str], annotations: dict[str, str]) -> None:
        body = {"metadata": {"name": name, "labels": labels, "annotations": annotations}}
        self.core.create_node(body)  # type: ignore[arg-type]  # the client takes dicts

    def label(self, name: str, **labels: str | None) -> None:
        self.core.patch_node(name, {"metadata": {"labels": labels}})

    def annotate(self, name: str, **annotations: str | None) -> None:
        self.core.patch_node(name, {"metadata": {"annotations": annotations}})

    def web(self, *nodes: str) -> None:
        """A dual-stack Service with a ready endpoint on each of ``nodes``, per family."""
        spec = {
            "clusterIP": WEB_V4,
            "clusterIPs": [WEB_V4, WEB_V6],
            "ipFamilyPolicy": "RequireDualStack",
        }
        body = {"metadata": {"name": "web"}, "spec": spec}
        self.core.create_namespaced_service("default", body)  # type: ignore[arg-type]
        for family, address in (("IPv4", "10.244.{}.5"), ("IPv6", "fd00:244:{}::5")):
            endpoints = [
                {"addresses": [address.format(i)], "nodeName": node, "conditions": {"ready": True}}
                for i, node in enumerate(nodes, 1)
            ]
            put_endpoints(self.discovery, "web", endpoints, f"web-{family}", address_type=family)


@contextlib.contextmanager
def kubernetes(fabric: RackFabric) -> Iterator[Cluster]:
    """The lab API server, reachable from the fabric's nodes."""
    with serving(netns=[ns.name for ns in fabric.nodes], store=Store()) as (_, port):
        kubeconfig = fabric.lab.workdir / "kubeconfig"
        write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
        api = config.new_client_from_config(config_file=str(kubeconfig))
        yield Cluster(client.CoreV1Api(api), client.DiscoveryV1Api(api), kubeconfig)


def start(fabric: RackFabric, index: int, kube: Cluster, node_ip: str = "", **bgp: Any) -> Cosmolet:
    """cosmolet on node ``index`` with the shared config (``bgp``: keys added or replaced), and
    ``NODE_IP`` as the chart sets it when given."""
    shared = json.loads(json.dumps(SHARED))
    shared["bgp"].update(bgp)
    node = Cosmolet(
        fabric.nodes[index - 1],
        fabric.lab.workdir / f"node{index}-agent",
        {**shared, "nodeName": f"node{index}"},
        kube.kubeconfig,
    )
    if node_ip:
        node.env["NODE_IP"] = node_ip
    return node.start()


def status(node: Cosmolet) -> dict[str, Any]:
    code, body = http_get(node.ns, "/status")
    assert code == 200, body
    result: dict[str, Any] = json.loads(body)
    return result


def session(fabric: RackFabric, router: str, address: str) -> tuple[int, int]:
    """(milliseconds established, times established) of ``router``'s session with ``address``."""
    neighbor = fabric.neighbor(router, address)
    return int(neighbor.get("bgpTimerUpMsec", 0)), int(neighbor.get("connectionsEstablished", 0))


def events(node: Cosmolet, text: str) -> list[dict[str, Any]]:
    return [line for line in node.logs() if text in str(line.get("event", ""))]


def test_two_racks_one_config_a_live_relabel_and_a_nodes_own_asn(lab: Lab) -> None:
    fabric = build_racks(lab, ((1,), (2,)), collector=True)
    tor1_v4, node1_v4, tor1_v6, node1_v6 = link_addresses(1, 1)
    _, node2_v4, _, node2_v6 = link_addresses(2, 2)
    via_collector = {n: link_addresses(COLLECTOR, n)[1] for n in (1, 2)}
    with kubernetes(fabric) as kube:
        kube.node("node1", {"rack": "r1", COLLECTOR_LABEL: "true"}, {})
        kube.node("node2", {"rack": "r2"}, {"cosmolet.io/asn": "65002"})
        kube.web("node1", "node2")
        node1, node2 = start(fabric, 1, kube), start(fabric, 2, kube)

        # Each rack's ToR learns web from its own node, over IPv4 and IPv6: one config.
        wait_for(lambda: fabric.next_hops("leaf1", WEB) == {node1_v4}, 60, what="leaf1 web")
        wait_for(lambda: fabric.next_hops("leaf2", WEB) == {node2_v4}, 60, what="leaf2 web")
        wait_for(lambda: node1_v6 in fabric.next_hops("leaf1", WEB6, "ipv6"), 30, what="v6 1")
        wait_for(lambda: node2_v6 in fabric.next_hops("leaf2", WEB6, "ipv6"), 30, what="v6 2")
        # node2 speaks with its own AS, from its Node annotation; node1 with bgp.asn.
        assert fabric.neighbor("leaf2", node2_v4)["remoteAs"] == 65002
        assert fabric.neighbor("leaf1", node1_v4)["remoteAs"] == 65001
        # The collector entry is node1's only: rack r1's node carries the label.
        wait_for(lambda: fabric.next_hops("collector", WEB) == {via_collector[1]}, 30)
        one, two = status(node1), status(node2)
        collector_v4, _, collector_v6, _ = link_addresses(COLLECTOR, 1)
        assert {p["address"]: p["origin"] for p in one["peers"]} == {
            tor1_v4: "bgp.peers[0] (interface eth1)",
            tor1_v6: "bgp.peers[0] (interface eth1)",
            collector_v4: "bgp.peers[1] (interface eth2)",
            collector_v6: "bgp.peers[1] (interface eth2)",
        }
        assert (two["asn"], two["asnFrom"]) == (65002, "Node annotation cosmolet.io/asn")
        assert [u["entry"] for u in two["peerEntriesUnused"]] == ["bgp.peers[1]"]
        # start read each Node before ExaBGP started: its first configuration was right, and
        # the agent, once it had listed the Node, had nothing to reload.
        for node in (node1, node2):
            assert not events(node, "ExaBGP's neighbors changed: reloading"), node.ns.name

        # Live relabel: node2 joins the collector. ExaBGP is not restarted and its ToR session
        # is not reset: the session's uptime keeps counting.
        exabgp = node2.exabgp_pid()
        time.sleep(3)  # an uptime that can be seen to go on counting
        before, established = session(fabric, "leaf2", node2_v4)
        relabelled = time.monotonic()
        kube.label("node2", **{COLLECTOR_LABEL: "true"})
        wait_for(
            lambda: fabric.next_hops("collector", WEB) == set(via_collector.values()),
            30,
            what="the collector learns web from node2 too",
        )
        took = time.monotonic() - relabelled
        time.sleep(2)
        after, established_after = session(fabric, "leaf2", node2_v4)
        elapsed = time.monotonic() - relabelled
        print(
            f"\nrelabel -> the new peer's routes at the collector: {took:.2f} s; leaf2's "
            f"session with node2: up {before / 1000:.1f} s before, {after / 1000:.1f} s "
            f"{elapsed:.1f} s later, established {established} -> {established_after} times; "
            f"ExaBGP pid {exabgp} -> {node2.exabgp_pid()}"
        )
        assert node2.exabgp_pid() == exabgp
        assert established_after == established
        assert after >= before + (elapsed - 2) * 1000  # still counting (FRR's clock is coarse)
        assert events(node2, "ExaBGP's neighbors changed: reloading")

        # The label leaves node1: node1's routes leave the collector at once (withdrawn before
        # its neighbor goes: removed by a reload under graceful restart, ExaBGP closes without
        # a NOTIFICATION and the collector would keep them stale for the restart time).
        unlabelled = time.monotonic()
        kube.label("node1", **{COLLECTOR_LABEL: None})
        wait_for(
            lambda: fabric.next_hops("collector", WEB) == {via_collector[2]},
            10,
            what="node1's routes leave the collector",
        )
        gone = time.monotonic() - unlabelled
        print(f"label removed -> node1's routes gone from the collector: {gone:.2f} s")

        # node1 gets its own AS: its sessions reset, necessarily, and cleanly: graceful restart
        # keeps web in leaf1's FIB throughout, and the log says why.
        kube.annotate("node1", **{"cosmolet.io/asn": "65003"})
        kept = sample(lambda: bool(fabric.fib("leaf1", WEB)), 8, 0.01)
        wait_for(lambda: fabric.neighbor("leaf1", node1_v4).get("remoteAs") == 65003, 30)
        wait_for(lambda: fabric.established("leaf1", node1_v4), 30)
        assert all(kept), f"web left leaf1's FIB in {kept.count(False)} of {len(kept)} samples"
        (change,) = events(node1, "AS or router id changed")[:1]
        assert change["asn"].startswith("65001 -> 65003 (from Node annotation")
        wait_for(
            lambda: (
                fabric.routers["leaf1"].json(f"show bgp ipv4 unicast {WEB} json")["paths"][0][
                    "aspath"
                ]["string"]
                == "65003"
            ),
            30,
            what="web from AS 65003 at leaf1",
        )


def test_an_address_change_re_derives_the_peer_and_bad_entries_leave_the_rest_working(
    lab: Lab,
) -> None:
    """The /31 is renumbered (both ends): the IPv4 peer follows, the IPv6 session is untouched.
    Entries that cannot be resolved here (an interface on a /24, a gateway that does not exist,
    a malformed AS annotation) are named in the log and /status; the good ones peer."""
    fabric = build_racks(lab, ((1,),))
    node_ns, leaf = fabric.nodes[0], fabric.routers["leaf1"]
    node_ns.ip("link", "add", "eth7", "type", "veth", "peer", "name", "eth7p")
    node_ns.ip("addr", "add", "10.7.0.5/24", "dev", "eth7")
    with kubernetes(fabric) as kube:
        kube.node("node1", {"rack": "r1"}, {"cosmolet.io/asn": "abc"})
        kube.web("node1")
        peers = [
            {"interface": "eth1", "asn": "auto"},
            {"interface": "eth7", "asn": 65000},
            {"address": "gateway", "asn": 65000},
        ]
        # NODE_IP gives the router id (as the chart does): renumbering the link must not change
        # it, which would reset every session (the fallback, the first IPv4 local address).
        node = start(fabric, 1, kube, node_ip="192.0.2.11", peers=peers)
        tor_v4, node_v4, _, node_v6 = link_addresses(1, 1)
        wait_for(lambda: fabric.next_hops("leaf1", WEB) == {node_v4}, 60, what="web via eth1")
        wait_for(lambda: node_v6 in fabric.next_hops("leaf1", WEB6, "ipv6"), 30, what="v6")
        problems = {p["entry"]: p["problem"] for p in status(node)["peerProblems"]}
        assert problems == {
            "Node annotation cosmolet.io/asn": "'abc' is not an AS number 1-4294967295: using "
            "bgp.asn 65001",
            "bgp.peers[1].interface": "eth7: its ipv4 addresses (10.7.0.5/24) are not on a /31 "
            "or /30",
            "bgp.peers[2].address": "gateway: this node has no default route",
        }
        logged = {line["entry"] for line in events(node, "peer entry not usable on this node")}
        assert logged >= set(problems)

        # Renumber the link: 10.1.1.0/31 becomes 10.1.1.4/31 on both ends.
        _, v6_established = session(fabric, "leaf1", node_v6)
        leaf.ns.ip("addr", "add", "10.1.1.4/31", "dev", "eth1")
        leaf.vtysh(
            "configure terminal",
            "router bgp 65101",
            "neighbor 10.1.1.5 remote-as external",
            "neighbor 10.1.1.5 timers 3 9",
            "neighbor 10.1.1.5 timers connect 1",
            "address-family ipv4 unicast",
            "neighbor 10.1.1.5 activate",
        )
        node_ns.ip("addr", "del", f"{node_v4}/31", "dev", "eth1")
        node_ns.ip("addr", "add", "10.1.1.5/31", "dev", "eth1")
        wait_for(
            lambda: fabric.next_hops("leaf1", WEB) == {"10.1.1.5"},
            40,
            what="web via the renumbered link",
        )
        assert session(fabric, "leaf1", node_v6)[1] == v6_established  # not reset
        assert "10.1.1.4" in {p["address"] for p in status(node)["peers"]}
        assert tor_v4 not in {p["address"] for p in status(node)["peers"]}


def test_bfd_in_numbered_mode_detects_a_silent_node(lab: Lab) -> None:
    """node1 is on leaf1 (BFD 100 ms x 3) and leaf2 (no BFD). bfdd runs beside ExaBGP as the
    chart's sidecar runs it in numbered mode (zebra, no router advertisement, bfdd) and the
    agent keeps its peers equal to the resolved peers. The node falls silent (ExaBGP and bfdd
    frozen): leaf1 drops its routes within a second, leaf2 at the hold time."""
    fabric = build_racks(lab, ((1, 2),), bfd_leaves=(1,))
    node_dir = lab.workdir / fabric.nodes[0].name
    bfd = {"enabled": True, "minRxMs": 100, "minTxMs": 100, "vtyshSocketDir": str(node_dir)}
    peers = [{"interface": "eth1", "asn": "auto"}, {"interface": "eth2", "asn": "auto"}]
    settings = {**SHARED, "nodeName": "node1", "bgp": {**SHARED["bgp"], "peers": peers, "bfd": bfd}}
    rendered = frr_config.render(validate(settings), [])
    assert "interface" not in rendered and "bfd" in rendered  # no RA, bfdd only
    frr = lab.frr(fabric.nodes[0], rendered, daemons=("zebra", "bfdd"))
    with kubernetes(fabric) as kube:
        kube.node("node1", {}, {})
        kube.web("node1")
        node = start(fabric, 1, kube, peers=peers, bfd=bfd)
        _, node_v4, _, _ = link_addresses(1, 1)
        _, node_v4_leaf2, _, _ = link_addresses(2, 1)
        wait_for(lambda: fabric.next_hops("leaf1", WEB) == {node_v4}, 60, what="leaf1 web")
        wait_for(lambda: fabric.next_hops("leaf2", WEB) == {node_v4_leaf2}, 60, what="leaf2 web")
        wanted = {link_addresses(leaf, 1)[i] for leaf in (1, 2) for i in (0, 2)}
        wait_for(
            lambda: {p["peer"] for p in frr.json("show bfd peers json")} == wanted,
            30,
            what="bfdd's peers are the resolved peers",
        )
        wait_for(
            lambda: any(
                p.get("status") == "up" for p in fabric.routers["leaf1"].json("show bfd peers json")
            ),
            30,
            what="leaf1's BFD session up",
        )
        frozen = [node.exabgp_pid(), frr.pids["bfdd"]]
        started = time.monotonic()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            wait_for(lambda: not fabric.fib("leaf1", WEB), 5, 0.005, "leaf1 (BFD) withdraws")
            with_bfd = time.monotonic() - started
            wait_for(lambda: not fabric.fib("leaf2", WEB), 20, 0.01, "leaf2 (hold time)")
            without_bfd = time.monotonic() - started
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        print(
            f"\nnumbered mode, silent node detected: with BFD {with_bfd * 1000:.0f} ms, "
            f"without BFD (hold time 9 s) {without_bfd:.1f} s"
        )
        assert with_bfd < 1.0
        assert without_bfd > 3.0
        for router in ("leaf1", "leaf2"):
            wait_for(partial(fabric.fib, router, WEB), 40, what=f"{router} back")
