"""``python -m lab.demo --numbered``: a numbered fabric of two racks, one config for both nodes.

    spine (FRR, AS 65000) ── client 10.2.0.2 / fd02::2
      |             |
    leaf1         leaf2          rack r1 (AS 65101), rack r2 (AS 65102): each node's ToR
      | eth1        | eth2
      | 10.1.1.0/31 | 10.2.2.0/31   and fd10:1:1::/127, fd10:2:2::/127
      | eth1        | eth1
    node1         node2          one config: AS 65001, but node2's Node says cosmolet.io/asn 65002

Both nodes run the same config: each peers with the ToR at the other end of its eth1, with the
rack's AS chosen by a nodeSelector on the Node's ``rack`` label. The story: each node's resolved
peers, Services reaching the spine through both racks, node2's AS changed live (its sessions
reset, its routes kept by graceful restart), an agent killed, a link down and up, an endpoint
moving rack. Every step checked and timed; everything removed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from lab import chart
from lab.apiserver import Store, serving, write_kubeconfig
from lab.demo import DUAL4, DUAL6, FORBIDDEN, LB, PREFIXES, V4, Story
from lab.netns import Lab
from lab.node import Cosmolet, http_get
from lab.numbered import RackFabric, build_racks, link_addresses
from lab.pod import PodRunner

RACKS = {"node1": "r1", "node2": "r2"}
ASN = {"node1": {}, "node2": {"cosmolet.io/asn": "65002"}}  # the Nodes' annotations
CONFIG: dict[str, Any] = {
    "mode": "numbered",
    "bgp": {
        "asn": 65001,
        "peers": [
            {
                "interface": "eth1",
                "asn": 65100 + rack,
                "nodeSelector": {"matchLabels": {"rack": f"r{rack}"}},
            }
            for rack in (1, 2)
        ],
    },
    "services": {
        "advertise": {
            "loadBalancerIPs": {"enabled": True, "allowedCIDRs": ["198.51.100.0/24"]},
            "externalIPs": {"enabled": True, "allowedCIDRs": ["203.0.113.0/24"]},
        }
    },
}
SPINE_PORTS = {"eth1": "leaf1", "eth2": "leaf2"}
LEAF_PORTS = {
    "leaf1": {"eth1": "node1", "eth3": "spine"},
    "leaf2": {"eth2": "node2", "eth3": "spine"},
}


class RackDemo(Story):
    def __init__(
        self,
        fabric: RackFabric,
        kubeconfig: Path,
        agents: list[Cosmolet],
        pods: list[PodRunner] | None = None,
    ) -> None:
        """``pods``: each node's chart pod; without them, ``agents`` (processes)."""
        super().__init__(kubeconfig)
        self.pods = pods
        self.fabric = fabric
        self.agents = agents

    def where(self, prefix: str) -> dict[str, list[str]]:
        """Who holds ``prefix`` and via whom: spine -> leaves, leaves -> nodes."""
        f = self.fabric
        return {
            "spine": [SPINE_PORTS.get(p, p) for p in f.paths("spine", prefix)],
            **{
                leaf: [LEAF_PORTS[leaf].get(p, p) for p in f.paths(leaf, prefix)]
                for leaf in ("leaf1", "leaf2")
            },
        }

    def table(self) -> None:
        print(f"          {'prefix':<16} {'spine via':<14} {'leaf1 via':<14} {'leaf2 via':<14}")
        for prefix in PREFIXES:
            held = self.where(prefix)
            cells = [",".join(held[r]) or "-" for r in ("spine", "leaf1", "leaf2")]
            print(f"          {prefix:<16} {cells[0]:<14} {cells[1]:<14} {cells[2]:<14}")

    def status(self, index: int) -> dict[str, Any]:
        """node ``index``'s ``/status``; empty while its agent does not answer yet."""
        try:
            code, body = http_get(self.fabric.nodes[index - 1], "/status")
        except RuntimeError:  # connection refused: the agent is still starting
            return {}
        result: dict[str, Any] = json.loads(body) if code == 200 else {}
        return result

    def show_peers(self, index: int) -> dict[str, Any]:
        found = self.status(index)
        print(
            f"          node{index}: AS {found.get('asn')} (from {found.get('asnFrom')}), router "
            f"id {found.get('routerId')} (from {found.get('routerIdFrom')})"
        )
        for peer in found.get("peers", []):
            print(f"            peer {peer['address']:<14} {peer['state']:<5} {peer['origin']}")
        for unused in found.get("peerEntriesUnused", []):
            print(f"            not used here: {unused['entry']}: {unused['reason']}")
        return found

    def agent_pid(self) -> int:
        """node1's agent: in its pod's cosmolet container, or the process the lab started."""
        if self.pods is not None:
            return chart.agent_pid(self.pods[0])
        return self.agents[0].agent_pid()

    def remote_as(self, leaf: int, node: int) -> int | None:
        address = link_addresses(leaf, node)[1]
        found = self.fabric.neighbor(f"leaf{leaf}", address).get("remoteAs")
        return int(found) if isinstance(found, int) else None

    def run(self) -> int:
        f = self.fabric
        self.say("fabric built: spine, two racks (leaf1 + node1, leaf2 + node2), client")
        if self.pods is not None:
            self.say("each node runs the Helm chart's pod (helm template, CONFIG as its values)")
        self.say("one config for both nodes: peer with the other end of eth1, the rack's AS")
        print("          " + json.dumps(CONFIG["bgp"]["peers"]))
        self.timed(
            "each ToR has its node's sessions (IPv4 and IPv6) and the spine",
            lambda: all(
                f.established(f"leaf{n}", link_addresses(n, n)[i]) for n in (1, 2) for i in (1, 3)
            ),
            60,
        )
        for index, pod in enumerate(self.pods or [], 1):
            ready = pod.wait_ready(60)  # the readiness probe, polled as the kubelet does
            self.check(True, f"node{index}'s pod Ready {ready:.1f} s after its creation")
        self.timed(
            "each agent has resolved its peers",
            lambda: all(self.status(n).get("asn") for n in (1, 2)),
            30,
        )
        self.say("what each node resolved (cosmolet status)")
        one, two = self.show_peers(1), self.show_peers(2)
        self.check(
            {p["address"] for p in one.get("peers", [])} == {"10.1.1.0", "fd10:1:1::"},
            "node1 peers with rack r1's ToR at the other end of its /31 and /127",
        )
        self.check(
            {p["address"] for p in two.get("peers", [])} == {"10.2.2.0", "fd10:2:2::"},
            "node2 peers with rack r2's ToR: other addresses, the same config",
        )
        self.check(
            two.get("asn") == 65002 and self.remote_as(2, 2) == 65002,
            "node2 speaks AS 65002, from its Node's cosmolet.io/asn annotation",
        )

        self.create_services()
        both = {"spine": ["leaf1", "leaf2"], "leaf1": ["node1"], "leaf2": ["node2"]}
        self.timed(
            "web, dual (v4 and v6): the spine reaches them through both racks (ECMP)",
            lambda: all(self.where(p) == both for p in (V4, DUAL4, DUAL6)),
        )
        self.timed(
            "the externalTrafficPolicy Local LB IP only from node1: rack r2 goes to the spine",
            lambda: self.where(LB) == {"spine": ["leaf1"], "leaf1": ["node1"], "leaf2": ["spine"]},
        )
        self.table()
        self.check(not any(self.where(FORBIDDEN).values()), f"{FORBIDDEN} is nowhere")
        for address in (V4, DUAL6, LB):
            self.check(f.ping(address), f"client pings {address} through spine, leaf, node")

        self.say("node2's Node gets cosmolet.io/asn 65003: its sessions reset, graceful restart")
        self.core.patch_node("node2", {"metadata": {"annotations": {"cosmolet.io/asn": "65003"}}})
        lost = self.watch(lambda: self.where(V4)["spine"] != ["leaf1", "leaf2"], 4.0)
        self.timed("leaf2 sees node2 as AS 65003", lambda: self.remote_as(2, 2) == 65003, 30)
        self.check(not lost, "web stayed reachable through both racks meanwhile (sampled 4 s)")

        self.say("node1's agent is killed (kill -9): ExaBGP respawns it")
        old = self.agent_pid()
        os.kill(old, signal.SIGKILL)
        lost = self.watch(lambda: self.where(DUAL4) != both, 3.0)
        self.check(self.agent_pid() != old, "a new agent runs on node1")
        self.check(not lost, "no route left the fabric while it restarted (sampled for 3 s)")

        self.say("node1's link to its ToR goes down")
        f.nodes[0].ip("link", "set", "dev", "eth1", "down")
        self.timed(
            "the spine reaches web through rack r2 only",
            lambda: self.where(V4)["spine"] == ["leaf2"],
        )
        self.check(f.ping(V4), f"client still pings {V4}")
        f.nodes[0].ip("link", "set", "dev", "eth1", "up")
        f.client_routes(1)  # the kernel dropped node1's route back while its only link was down
        self.timed(
            "the link is back: the spine has both racks again (IPv4 and IPv6)",
            lambda: all(self.where(p)["spine"] == ["leaf1", "leaf2"] for p in (V4, DUAL6)),
            timeout=30,
        )

        self.say("the Local service's endpoint moves from node1 (rack r1) to node2 (rack r2)")
        self.endpoints("local", "node2")
        self.timed(
            "the LB IP follows it to rack r2",
            lambda: self.where(LB) == {"spine": ["leaf2"], "leaf1": ["spine"], "leaf2": ["node2"]},
        )
        self.table()
        for address in (V4, DUAL6, LB):
            self.check(f.ping(address), f"client pings {address}")
        return self.verdict()


def main() -> int:
    """Build, run the story, tear down (also on failure and Ctrl-C). The nodes run the Helm
    chart's pod (``lab.chart``) with ``CONFIG`` as its values; ``--processes``: plain
    processes."""
    if "--processes" in sys.argv[1:]:
        return main_processes()
    with Lab() as lab:
        fabric = build_racks(lab, ((1,), (2,)), spine=True)
        documents = chart.render({"config": CONFIG}, lab.workdir)
        nodes = [
            (
                fabric.nodes[index - 1],
                chart.node_object(name, chart.node_ip(index), {"rack": RACKS[name]}, ASN[name]),
            )
            for index, name in enumerate(RACKS, 1)
        ]
        with chart.pods_on(lab, documents, nodes) as (api, pods):
            story = RackDemo(fabric, api.kubeconfig, [], pods)
            return story.run()


def main_processes() -> int:
    """The nodes run cosmolet as processes the lab starts (no chart)."""
    with Lab() as lab:
        fabric = build_racks(lab, ((1,), (2,)), spine=True)
        with serving(netns=[ns.name for ns in fabric.nodes], store=Store()) as (_, port):
            kubeconfig = lab.workdir / "kubeconfig"
            write_kubeconfig(kubeconfig, f"http://127.0.0.1:{port}")
            story = RackDemo(fabric, kubeconfig, [])
            for index, name in enumerate(RACKS, 1):
                body = {
                    "metadata": {
                        "name": name,
                        "labels": {"rack": RACKS[name]},
                        "annotations": ASN[name],
                    }
                }
                story.core.create_node(body)  # type: ignore[arg-type]  # the client takes dicts
                node = Cosmolet(
                    fabric.nodes[index - 1],
                    lab.workdir / name,
                    {**json.loads(json.dumps(CONFIG)), "nodeName": name},
                    kubeconfig,
                )
                node.env["NODE_IP"] = f"192.0.2.{index}"  # as the chart sets it: status.hostIP
                story.agents.append(node.start())
            return story.run()
