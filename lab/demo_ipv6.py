"""``python -m lab.demo --ipv6-only``: the reference fabric with IPv6-only nodes, through the chart.

    spine (AS 65000) ── client fd02::2
      |         |
    leaf1      leaf2           BGP unnumbered (the switches keep their own IPv4 router ids)
      |  \\    /  |
    node1      node2           no IPv4 address at all: links link-local only, loopback
                               fd00:255::N (the Node's InternalIP, status.hostIP)

Each node runs the DaemonSet's pod rendered with ``charts/cosmolet/ci/ipv6-only-values.yaml``
exactly (no ``routerId``; probes on ``[::]:9179``), against the lab API server at ``[::1]`` over
TLS with the chart's RBAC. The story: each node's derived router id as the leaves read it, IPv6
Services (SingleStack, PreferDualStack, a LoadBalancer with ``externalTrafficPolicy: Local``)
and a dual-stack one whose IPv4 route still reaches the spine (RFC 8950), pinged from the client
over IPv6; an endpoint going unready and back, a link down and up. Every step checked and timed.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import yaml

from cosmolet.engine.router_ids import derived_router_id
from lab import chart
from lab import fabric as lab_fabric
from lab.demo import Demo
from lab.fabric import node_ipv6
from lab.ipv6_only import (
    DUAL4,
    DUAL6,
    PREFER,
    V6,
    Cluster,
    hold_service_ips,
    node_object,
    remote_router_ids,
)
from lab.kube_client import put_endpoints
from lab.netns import Lab
from lab.node import http_get
from lab.pod import Image

VALUES = chart.CHART / "ci" / "ipv6-only-values.yaml"
LB6 = "2001:db8:100::10"
EVERYWHERE = {"spine": ["leaf1", "leaf2"], "leaf1": ["node1", "node2"], "leaf2": ["node1", "node2"]}


@contextlib.contextmanager
def running(image: Image | None = None) -> Iterator[chart.ChartFabric]:
    """The IPv6-only fabric with the chart's pod on each node (in ``image``, by default the
    host's install), torn down on exit."""
    with Lab() as lab:
        fabric = lab_fabric.build(lab, "hybrid", ipv6_only=True)
        hold_service_ips(fabric)
        for node in fabric.nodes:
            node.ip("addr", "add", f"{LB6}/128", "dev", "lo")
        documents = chart.render(yaml.safe_load(VALUES.read_text()), lab.workdir)
        nodes = [(ns, node_object(index)) for index, ns in enumerate(fabric.nodes, 1)]
        with chart.pods_on(lab, documents, nodes, api_host="::1", image=image) as (api, pods):
            fabric.kubeconfig, fabric.api_port = api.kubeconfig, api.port
            lab_fabric.return_routes(fabric)
            yield chart.ChartFabric(fabric, pods)


class Ipv6Demo(Demo):
    """The IPv6-only story (the hybrid story's narration, checks and paths)."""

    def run(self) -> int:
        f = self.fabric
        self.say("fabric built: nodes with no IPv4 address, BGP unnumbered, client fd02::2")
        self.say(f"each node runs the Helm chart's pod, values {VALUES.relative_to(chart.ROOT)}")
        took = lab_fabric.wait_established(f)
        self.check(True, f"every leaf has its spine and both nodes established ({took:.1f} s)")
        for index, pod in enumerate(self.pods or [], 1):
            ready = pod.wait_ready(60)  # probed at the node's IPv6 address, as the kubelet does
            self.check(True, f"node{index}'s pod Ready {ready:.1f} s after its creation")
        self.router_ids()

        self.say("IPv6 Services, and a dual-stack one, with the official client over [::1]")
        cluster = Cluster(self.core, self.discovery)
        cluster.services("node1", "node2")
        self.service(
            "local",
            ["fd00:96::12"],
            type="LoadBalancer",
            externalTrafficPolicy="Local",
            ipFamilies=["IPv6"],
        )
        self.core.patch_namespaced_service_status(
            "local", "default", {"status": {"loadBalancer": {"ingress": [{"ip": LB6}]}}}
        )
        self.local_endpoint("node1")
        self.timed(
            "SingleStack, PreferDualStack and dual-stack (v6 and v4) on both nodes, both "
            "leaves, the spine (ECMP)",
            lambda: all(self.where(p) == EVERYWHERE for p in (V6, PREFER, DUAL6, DUAL4)),
        )
        self.timed(
            f"the Local LB IP {LB6} only via node1",
            lambda: (
                self.where(LB6)
                == {"spine": ["leaf1", "leaf2"], "leaf1": ["node1"], "leaf2": ["node1"]}
            ),
        )
        hops = self.fabric.routers["leaf1"].json(f"show bgp ipv4 unicast {DUAL4}/32 json")
        found = {h["ip"] for p in hops.get("paths", []) for h in p.get("nexthops", [])}
        self.check(
            len(found) >= 2 and all(ip.startswith("fe80:") for ip in found),
            f"{DUAL4} at leaf1 via the nodes' IPv6 link-locals (RFC 8950): {sorted(found)}",
        )
        for address in (V6, PREFER, DUAL6, LB6):
            self.check(f.ping(address), f"client pings {address} (IPv6) through spine, leaf, node")

        self.say("v6's endpoints go unready")
        cluster.endpoints("v6", "node1", "node2", ready=False)
        self.timed(f"{V6} withdrawn from the spine", lambda: not self.where(V6)["spine"])
        cluster.endpoints("v6", "node1", "node2")
        self.timed(f"{V6} back on the spine", lambda: self.where(V6) == EVERYWHERE)

        self.say("node1's link to leaf1 goes down")
        f.nodes[0].ip("link", "set", "dev", "eth1", "down")
        self.timed("leaf1 reaches the services via node2 only", lambda: self.leaf1(["node2"]))
        self.check(f.ping(V6), f"client still pings {V6}")
        f.nodes[0].ip("link", "set", "dev", "eth1", "up")
        self.timed(
            "the link is back: leaf1 has node1 again", lambda: self.leaf1(["node1", "node2"]), 30
        )
        for address in (V6, LB6):
            self.check(f.ping(address), f"client pings {address}")
        return self.verdict()

    def leaf1(self, nodes: list[str]) -> bool:
        return all(self.where(p)["leaf1"] == nodes for p in (V6, DUAL4))

    def local_endpoint(self, node: str) -> None:
        endpoints = [
            {"addresses": ["fd00:244:1::7"], "nodeName": node, "conditions": {"ready": True}}
        ]
        put_endpoints(self.discovery, "local", endpoints, "local-v6", address_type="IPv6")

    def router_ids(self) -> None:
        """Each node's derived id: in its /status, and as both leaves read it from its OPEN."""
        derived = {}
        for index, node in enumerate(self.fabric.nodes, 1):
            found = derived_router_id(node_ipv6(index), "")
            assert found is not None
            derived[f"node{index}"] = found[0]
            status = json.loads(http_get(node, "/status")[1])
            self.check(
                status["routerId"] == found[0] and status["routerIdFrom"] == found[1],
                f"node{index}: router id {status['routerId']} ({status['routerIdFrom']})",
            )
        for leaf in ("leaf1", "leaf2"):
            ids = remote_router_ids(self.fabric.routers[leaf])
            seen = {"node1": ids.get("eth1"), "node2": ids.get("eth2")}
            self.check(seen == derived, f"{leaf} reads them in the nodes' OPENs: {seen}")
        self.check(derived["node1"] != derived["node2"], "two nodes, two router ids")


def main() -> int:
    with running() as pods:
        return Ipv6Demo(pods.fabric, pods.pods).run()
